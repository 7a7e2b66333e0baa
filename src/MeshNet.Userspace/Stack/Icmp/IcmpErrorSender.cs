using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Icmp;

/// <summary>
/// Builds and sends the ICMP and ICMPv6 errors the stack originates: port unreachable,
/// administratively prohibited (for datagrams the inbound filter rejects),
/// protocol unreachable (IPv4), unrecognized next header (IPv6 parameter problem) and time
/// exceeded during reassembly. All of them share one token bucket
/// (<see cref="IpStackOptions.IcmpErrorsPerSecond"/>); a suppressed error counts as
/// <see cref="StackDropReason.IcmpRateLimited"/>.
/// </summary>
/// <remarks>
/// <para>Never sent (RFC 1122 3.2.2, RFC 4443 2.4(e)): about an ICMP error message, about a
/// fragment other than the first, to a source that is not unicast, or from an address that is
/// not ours. Callers only pass validated unicast packets addressed to us, whole or reassembled;
/// the checks here are the last line.</para>
/// <para>The quote is as much of the offending packet as fits in 576 bytes (IPv4, RFC 1812
/// 4.3.2.3) or 1280 bytes (IPv6, RFC 4443 2.4(c)). Thread-safe; each error rents one buffer from
/// <see cref="ArrayPool{T}.Shared"/>.</para>
/// </remarks>
internal sealed class IcmpErrorSender
{
    private const int MaxQuoteV4 = 576 - IpProtocol.Ipv4HeaderLength - IcmpMessage.HeaderLength;
    private const int MaxQuoteV6 = 1280 - IpProtocol.Ipv6HeaderLength - IcmpMessage.HeaderLength;

    private readonly StackContext _context;
    private readonly IcmpRateLimiter _limiter;

    public IcmpErrorSender(StackContext context)
    {
        _context = context;
        _limiter = new IcmpRateLimiter(context.Time, context.Options.IcmpErrorsPerSecond);
    }

    /// <summary>Destination unreachable, port unreachable: no UDP socket for the packet.</summary>
    public void PortUnreachable(in IpPacketInfo offending)
    {
        if (offending.IsIPv6)
        {
            Send(true, offending.Destination, offending.Source, IcmpMessage.V6DestinationUnreachable, IcmpMessage.V6CodePortUnreachable, 0, offending.Packet);
        }
        else
        {
            Send(false, offending.Destination, offending.Source, IcmpMessage.V4DestinationUnreachable, IcmpMessage.V4CodePortUnreachable, 0, offending.Packet);
        }
    }

    /// <summary>
    /// Destination unreachable, communication administratively prohibited (IPv4 code 13,
    /// ICMPv6 code 1): a packet filter refused the datagram. Never about an ICMP message.
    /// </summary>
    public void AdministrativelyProhibited(in IpPacketInfo offending)
    {
        if (offending.Protocol is IpProtocol.Icmp or IpProtocol.IcmpV6)
        {
            return;
        }
        if (offending.IsIPv6)
        {
            Send(true, offending.Destination, offending.Source, IcmpMessage.V6DestinationUnreachable, IcmpMessage.V6CodeAdministrativelyProhibited, 0, offending.Packet);
        }
        else
        {
            Send(false, offending.Destination, offending.Source, IcmpMessage.V4DestinationUnreachable, IcmpMessage.V4CodeCommunicationProhibited, 0, offending.Packet);
        }
    }

    /// <summary>IPv4 destination unreachable, protocol unreachable: a transport protocol the stack does not speak.</summary>
    public void ProtocolUnreachable(in IpPacketInfo offending)
    {
        if (!offending.IsIPv6 && offending.Protocol != IpProtocol.Icmp)
        {
            Send(false, offending.Destination, offending.Source, IcmpMessage.V4DestinationUnreachable, IcmpMessage.V4CodeProtocolUnreachable, 0, offending.Packet);
        }
    }

    /// <summary>
    /// ICMPv6 parameter problem, unrecognized next header (RFC 8200 4): <paramref name="pointer"/>
    /// is the offset in the packet of the next-header field naming the unknown protocol.
    /// </summary>
    public void UnrecognizedNextHeader(in IpPacketInfo offending, int pointer)
    {
        if (offending.IsIPv6)
        {
            Send(true, offending.Destination, offending.Source, IcmpMessage.V6ParameterProblem, IcmpMessage.V6CodeUnrecognizedNextHeader, (uint)pointer, offending.Packet);
        }
    }

    /// <summary>
    /// Time exceeded, fragment reassembly time exceeded, for a datagram whose first fragment
    /// arrived: <paramref name="quote"/> is that fragment, <paramref name="firstData"/> its data,
    /// <paramref name="protocol"/> the protocol (IPv6: next header) its data starts with.
    /// </summary>
    public void ReassemblyTimeExceeded(in FragmentKey key, byte protocol, ReadOnlySpan<byte> quote, ReadOnlySpan<byte> firstData)
    {
        if (IsAboutIcmpError(key.IsIPv6, protocol, firstData))
        {
            return;
        }
        if (key.IsIPv6)
        {
            Send(true, key.Destination, key.Source, IcmpMessage.V6TimeExceeded, IcmpMessage.V6CodeReassemblyTimeExceeded, 0, quote);
        }
        else
        {
            Send(false, key.Destination, key.Source, IcmpMessage.V4TimeExceeded, IcmpMessage.V4CodeReassemblyTimeExceeded, 0, quote);
        }
    }

    private void Send(bool ipv6, NetAddress source, NetAddress destination, byte type, byte code, uint rest, ReadOnlySpan<byte> quote)
    {
        if (!IpAddressRules.IsUnicast(destination) || !_context.IsLocal(source) || source.IsIPv6 != ipv6)
        {
            return;
        }
        if (!_limiter.TryAcquire())
        {
            _context.Counters.Drop(StackDropReason.IcmpRateLimited);
            return;
        }

        int quoteLength = Math.Min(quote.Length, ipv6 ? MaxQuoteV6 : MaxQuoteV4);
        int length = IcmpMessage.HeaderLength + quoteLength;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(IIpOutput.HeaderRoom + length);
        try
        {
            Span<byte> message = buffer.AsSpan(IIpOutput.HeaderRoom, length);
            message[0] = type;
            message[1] = code;
            message[2] = message[3] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(message[4..], rest);
            quote[..quoteLength].CopyTo(message[IcmpMessage.HeaderLength..]);
            ushort checksum = ipv6
                ? InternetChecksum.Transport(source, destination, IpProtocol.IcmpV6, message)
                : InternetChecksum.Compute(message);
            BinaryPrimitives.WriteUInt16BigEndian(message[2..], checksum);
            if (_context.Output.Send(source, destination, ipv6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp, buffer, length))
            {
                _context.Counters.IcmpErrorSent();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // True when the datagram's transport is ICMP and its message is an error (or unreadable).
    private static bool IsAboutIcmpError(bool ipv6, byte protocol, ReadOnlySpan<byte> data)
    {
        int offset = 0;
        if (ipv6)
        {
            // Extension headers may follow the fragment header: find the upper-layer protocol.
            for (int i = 0; i < 8 && protocol is IpProtocol.DestinationOptions or IpProtocol.Routing or IpProtocol.HopByHopOptions; i++)
            {
                if (data.Length - offset < 2)
                {
                    return true;
                }
                protocol = data[offset];
                offset += (data[offset + 1] + 1) * 8;
            }
        }
        if (protocol != (ipv6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp))
        {
            return false;
        }
        return offset >= data.Length || IcmpMessage.IsErrorOrUnknown(ipv6, data[offset]);
    }
}
