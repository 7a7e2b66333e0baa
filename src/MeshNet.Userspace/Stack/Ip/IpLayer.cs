using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Icmp;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// The IP receive path: validates IPv4 (RFC 791, RFC 1122 3.2.1) and IPv6 (RFC 8200) packets,
/// reassembles fragments, and hands each datagram to ICMP, UDP or TCP.
/// </summary>
/// <remarks>
/// <para>Checks, in order, each failure dropped and counted by <see cref="StackDropReason"/>:
/// version; header and length fields (the packet is trimmed to the length its header states);
/// the IPv4 header checksum; the destination is one of the stack's addresses (so multicast and
/// broadcast never are); the source is unicast and not ours (IPv4-mapped addresses are refused
/// in IPv6 headers); IPv6 extension headers; then reassembly for fragments. IPv4 options are
/// skipped, not interpreted. The TTL is not checked: we are the destination (RFC 1122 3.2.1.7).
/// Then the inbound filter (<see cref="IpStackOptions.InboundFilter"/>), if any, judges the whole
/// datagram (after reassembly, so fragments are never judged alone).</para>
/// <para>Unknown transport protocols are answered with ICMP protocol unreachable (IPv4) or an
/// ICMPv6 parameter problem pointing at the next-header field (IPv6), rate-limited.</para>
/// <para>The packet handed to a transport is a private copy in a pooled buffer (the link's
/// buffer is read-only and only valid during the call), so transports may modify it; a
/// reassembled datagram is already private. Nothing is allocated per packet.</para>
/// <para>Stateless apart from the reassembler and counters: thread-safe; packets may be
/// processed on several threads at once.</para>
/// </remarks>
internal sealed partial class IpLayer
{
    private readonly StackContext _context;
    private readonly IcmpLayer _icmp;
    private readonly ITransportHandler _udp;
    private readonly ITransportHandler _tcp;
    private readonly IcmpErrorSender _errors;
    private readonly FragmentReassembler _reassembler;

    public IpLayer(StackContext context, IcmpLayer icmp, ITransportHandler udp, ITransportHandler tcp, IcmpErrorSender errors,
        FragmentReassembler reassembler)
    {
        _context = context;
        _icmp = icmp;
        _udp = udp;
        _tcp = tcp;
        _errors = errors;
        _reassembler = reassembler;
    }

    /// <summary>Processes one packet from the link. Never throws for bad input.</summary>
    public void Receive(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty)
        {
            Drop(StackDropReason.IpTruncated);
            return;
        }
        switch (packet[0] >> 4)
        {
            case 4:
                ReceiveIPv4(packet);
                break;
            case 6:
                ReceiveIPv6(packet);
                break;
            default:
                Drop(StackDropReason.IpBadVersion);
                break;
        }
    }

    private void ReceiveIPv4(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < IpProtocol.Ipv4HeaderLength)
        {
            Drop(StackDropReason.IpTruncated);
            return;
        }
        int headerLength = (packet[0] & 0x0F) * 4;
        if (headerLength < IpProtocol.Ipv4HeaderLength || headerLength > packet.Length)
        {
            Drop(StackDropReason.IpBadHeaderLength);
            return;
        }
        int total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (total < headerLength)
        {
            Drop(StackDropReason.IpBadHeaderLength);
            return;
        }
        if (total > packet.Length)
        {
            Drop(StackDropReason.IpTruncated);
            return;
        }
        if (InternetChecksum.Compute(packet[..headerLength]) != 0)
        {
            Drop(StackDropReason.IpBadChecksum);
            return;
        }
        packet = packet[..total]; // link-layer padding, if any, is not ours

        var destination = NetAddress.FromIPv4(BinaryPrimitives.ReadUInt32BigEndian(packet[16..]));
        if (!_context.IsLocal(destination))
        {
            Drop(StackDropReason.IpNotForUs);
            return;
        }
        var source = NetAddress.FromIPv4(BinaryPrimitives.ReadUInt32BigEndian(packet[12..]));
        if (!IpAddressRules.IsUnicast(source) || _context.IsLocal(source))
        {
            Drop(StackDropReason.IpBadSource);
            return;
        }

        byte protocol = packet[9];
        ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        int offset = (fragment & 0x1FFF) << 3;
        bool more = (fragment & 0x2000) != 0;
        if (!more && offset == 0)
        {
            DeliverCopy(packet, headerLength, source, destination, protocol, nextHeaderField: -1);
            return;
        }

        var key = new FragmentKey(source, destination, BinaryPrimitives.ReadUInt16BigEndian(packet[4..]), protocol);
        if (_reassembler.Add(key, packet[..headerLength], headerLength, 0, offset, more, packet[headerLength..], out var datagram))
        {
            try
            {
                Dispatch(datagram.Buffer.AsSpan(0, datagram.Length), datagram.HeaderLength, source, destination, protocol, nextHeaderField: -1);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(datagram.Buffer);
            }
        }
    }

    // Copies a validated packet (the link's buffer is read-only and borrowed) and dispatches it.
    private void DeliverCopy(ReadOnlySpan<byte> packet, int transportOffset, NetAddress source, NetAddress destination, byte protocol,
        int nextHeaderField)
    {
        byte[] copy = ArrayPool<byte>.Shared.Rent(packet.Length);
        try
        {
            packet.CopyTo(copy);
            Dispatch(copy.AsSpan(0, packet.Length), transportOffset, source, destination, protocol, nextHeaderField);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    /// <summary>
    /// Hands a validated datagram (whole IP packet, privately owned) to its transport.
    /// <paramref name="nextHeaderField"/> (IPv6) locates the field naming the protocol, for the
    /// parameter problem sent when it is unknown.
    /// </summary>
    private void Dispatch(Span<byte> packet, int transportOffset, NetAddress source, NetAddress destination, byte protocol, int nextHeaderField)
    {
        bool ipv6 = destination.IsIPv6;
        byte hopLimit = ipv6 ? packet[7] : packet[8];
        byte trafficClass = ipv6 ? (byte)((packet[0] << 4) | (packet[1] >> 4)) : packet[1];
        var info = new IpPacketInfo(source, destination, protocol, hopLimit, trafficClass, packet);
        Span<byte> payload = packet[transportOffset..];
        if (_context.Filter is { } filter)
        {
            var headers = DatagramHeaders.Parse(source, destination, protocol, payload);
            var verdict = filter.Inspect(headers);
            if (verdict != FilterVerdict.Accept)
            {
                Drop(StackDropReason.FilterDenied);
                if (verdict == FilterVerdict.Reject)
                {
                    _errors.AdministrativelyProhibited(info);
                }
                return;
            }
        }
        switch (protocol)
        {
            case IpProtocol.Udp:
                _context.Counters.PacketDelivered();
                _udp.OnPacket(info, payload);
                break;
            case IpProtocol.Tcp:
                _context.Counters.PacketDelivered();
                _tcp.OnPacket(info, payload);
                break;
            case IpProtocol.Icmp when !ipv6:
                _context.Counters.PacketDelivered();
                _icmp.OnIcmpV4(info, payload);
                break;
            case IpProtocol.IcmpV6 when ipv6:
                _context.Counters.PacketDelivered();
                _icmp.OnIcmpV6(info, payload);
                break;
            default:
                Drop(StackDropReason.IpUnknownProtocol);
                if (!ipv6)
                {
                    _errors.ProtocolUnreachable(info);
                }
                else if (protocol != IpProtocol.NoNextHeader)
                {
                    _errors.UnrecognizedNextHeader(info, nextHeaderField);
                }
                break;
        }
    }

    private void Drop(StackDropReason reason) => _context.Counters.Drop(reason);
}
