using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Icmp;

/// <summary>
/// Inbound ICMP (RFC 792) and ICMPv6 (RFC 4443): answers echo requests, validates error
/// messages and passes them to the transport named in the quoted packet, and drops the rest.
/// </summary>
/// <remarks>
/// <para>Echo requests of any size the reassembler accepts are answered with the same
/// identifier, sequence, data and traffic class; the IP output fragments a reply larger than
/// the MTU. Replies are not rate-limited (as in Linux); errors the stack sends are (see
/// <see cref="IcmpErrorSender"/>).</para>
/// <para>Errors passed to transports: destination unreachable (port and protocol unreachable
/// become <see cref="IcmpErrorKind.PortUnreachable"/>, fragmentation needed
/// <see cref="IcmpErrorKind.PacketTooBig"/>, administratively prohibited (IPv4 codes 9, 10, 13,
/// ICMPv6 code 1) <see cref="IcmpErrorKind.AdministrativelyProhibited"/>, the other codes
/// <see cref="IcmpErrorKind.HostUnreachable"/>), ICMPv6 packet too big, time exceeded, and
/// ICMPv6 parameter problem "unrecognized next header" (as protocol unreachable). The reported
/// MTU is raised to 576 (IPv4) or 1280 (IPv6) when smaller, as RFC 1191 and RFC 8201 allow
/// hosts to ignore smaller values. The quote must parse (<see cref="QuotedPacket"/>) and come
/// from one of our addresses.</para>
/// <para>Ignored, and counted as <see cref="StackDropReason.IcmpIgnored"/>: echo replies,
/// neighbor discovery and router messages (the link is point-to-point), redirects, source
/// quench, other parameter problems, errors about our own ICMP messages, unknown types.</para>
/// <para>Stateless apart from counters: thread-safe.</para>
/// </remarks>
internal sealed class IcmpLayer
{
    private const int MinIPv4PathMtu = 576;
    private const int MinIPv6PathMtu = 1280;

    private readonly StackContext _context;
    private readonly ITransportHandler _udp;
    private readonly ITransportHandler _tcp;

    public IcmpLayer(StackContext context, ITransportHandler udp, ITransportHandler tcp)
    {
        _context = context;
        _udp = udp;
        _tcp = tcp;
    }

    /// <summary>Handles an ICMP message (the IPv4 payload of protocol 1).</summary>
    public void OnIcmpV4(in IpPacketInfo ip, Span<byte> message)
    {
        if (message.Length < IcmpMessage.HeaderLength || InternetChecksum.Compute(message) != 0)
        {
            _context.Counters.Drop(StackDropReason.IcmpMalformed);
            return;
        }
        byte code = message[1];
        switch (message[0])
        {
            case IcmpMessage.V4EchoRequest:
                SendEchoReply(ip, message, IcmpMessage.V4EchoReply);
                break;
            case IcmpMessage.V4DestinationUnreachable:
                var kind = code switch
                {
                    IcmpMessage.V4CodeProtocolUnreachable or IcmpMessage.V4CodePortUnreachable => IcmpErrorKind.PortUnreachable,
                    IcmpMessage.V4CodeFragmentationNeeded => IcmpErrorKind.PacketTooBig,
                    IcmpMessage.V4CodeNetworkProhibited or IcmpMessage.V4CodeHostProhibited
                        or IcmpMessage.V4CodeCommunicationProhibited => IcmpErrorKind.AdministrativelyProhibited,
                    _ => IcmpErrorKind.HostUnreachable,
                };
                int mtu = kind == IcmpErrorKind.PacketTooBig ? Math.Max((int)BinaryPrimitives.ReadUInt16BigEndian(message[6..]), MinIPv4PathMtu) : 0;
                PassError(ip, kind, mtu, message[IcmpMessage.HeaderLength..]);
                break;
            case IcmpMessage.V4TimeExceeded:
                PassError(ip, IcmpErrorKind.TimeExceeded, 0, message[IcmpMessage.HeaderLength..]);
                break;
            default:
                _context.Counters.Drop(StackDropReason.IcmpIgnored);
                break;
        }
    }

    /// <summary>Handles an ICMPv6 message (the IPv6 payload of next header 58).</summary>
    public void OnIcmpV6(in IpPacketInfo ip, Span<byte> message)
    {
        if (message.Length < 4 || InternetChecksum.Transport(ip.Source, ip.Destination, IpProtocol.IcmpV6, message) != 0)
        {
            _context.Counters.Drop(StackDropReason.IcmpMalformed);
            return;
        }
        byte type = message[0];
        if (type < 128 && message.Length < IcmpMessage.HeaderLength)
        {
            _context.Counters.Drop(StackDropReason.IcmpMalformed); // every error message has the 8-byte header
            return;
        }
        byte code = message[1];
        switch (type)
        {
            case IcmpMessage.V6EchoRequest:
                if (message.Length < IcmpMessage.HeaderLength)
                {
                    _context.Counters.Drop(StackDropReason.IcmpMalformed);
                    return;
                }
                SendEchoReply(ip, message, IcmpMessage.V6EchoReply);
                break;
            case IcmpMessage.V6DestinationUnreachable:
                var kind = code switch
                {
                    IcmpMessage.V6CodePortUnreachable => IcmpErrorKind.PortUnreachable,
                    IcmpMessage.V6CodeAdministrativelyProhibited => IcmpErrorKind.AdministrativelyProhibited,
                    _ => IcmpErrorKind.HostUnreachable,
                };
                PassError(ip, kind, 0, message[IcmpMessage.HeaderLength..]);
                break;
            case IcmpMessage.V6PacketTooBig:
                uint reported = BinaryPrimitives.ReadUInt32BigEndian(message[4..]);
                int mtu = (int)Math.Clamp(reported, MinIPv6PathMtu, IpProtocol.MaxDatagram);
                PassError(ip, IcmpErrorKind.PacketTooBig, mtu, message[IcmpMessage.HeaderLength..]);
                break;
            case IcmpMessage.V6TimeExceeded:
                PassError(ip, IcmpErrorKind.TimeExceeded, 0, message[IcmpMessage.HeaderLength..]);
                break;
            case IcmpMessage.V6ParameterProblem when code == IcmpMessage.V6CodeUnrecognizedNextHeader:
                PassError(ip, IcmpErrorKind.PortUnreachable, 0, message[IcmpMessage.HeaderLength..]);
                break;
            default:
                _context.Counters.Drop(StackDropReason.IcmpIgnored);
                break;
        }
    }

    private void PassError(in IpPacketInfo ip, IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted)
    {
        if (!QuotedPacket.TryParse(quoted, ip.IsIPv6, out var packet) || !_context.IsLocal(packet.Source))
        {
            _context.Counters.Drop(StackDropReason.IcmpBadQuote);
            return;
        }
        ITransportHandler? transport = packet.Protocol switch
        {
            IpProtocol.Udp => _udp,
            IpProtocol.Tcp => _tcp,
            _ => null,
        };
        if (transport is null)
        {
            _context.Counters.Drop(StackDropReason.IcmpIgnored);
            return;
        }
        _context.Counters.IcmpErrorReceived();
        transport.OnIcmpError(kind, mtu, quoted);
    }

    private void SendEchoReply(in IpPacketInfo ip, ReadOnlySpan<byte> request, byte replyType)
    {
        int length = request.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(IIpOutput.HeaderRoom + length);
        try
        {
            Span<byte> reply = buffer.AsSpan(IIpOutput.HeaderRoom, length);
            request.CopyTo(reply);
            reply[0] = replyType;
            reply[1] = 0;
            reply[2] = reply[3] = 0;
            ushort checksum = ip.IsIPv6
                ? InternetChecksum.Transport(ip.Destination, ip.Source, IpProtocol.IcmpV6, reply)
                : InternetChecksum.Compute(reply);
            BinaryPrimitives.WriteUInt16BigEndian(reply[2..], checksum);
            byte trafficClass = (byte)(ip.TrafficClass & 0xFC); // keep DSCP, not ECN
            if (_context.Output.Send(ip.Destination, ip.Source, ip.IsIPv6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp, buffer, length, trafficClass))
            {
                _context.Counters.IcmpEchoReplySent();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
