using System.Buffers.Binary;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// The IP packet quoted in an ICMP or ICMPv6 error, parsed far enough for a transport to find
/// the connection or socket it concerns: addresses, protocol, and the start of the transport
/// header (IPv6 extension headers skipped). The ICMP layer passes an error to a transport's
/// <see cref="ITransportHandler.OnIcmpError"/> only when <see cref="TryParse"/> succeeds on its
/// quote with a <see cref="Source"/> that is one of the stack's addresses, so transports may
/// parse it again with this type and rely on the result. Allocation-free; valid as long as the
/// span it was parsed from.
/// </summary>
internal readonly ref struct QuotedPacket
{
    /// <summary>The minimum number of transport-header bytes a usable quote contains (RFC 792).</summary>
    public const int MinTransportBytes = 8;

    private const int MaxExtensionHeaders = 8;

    private QuotedPacket(NetAddress source, NetAddress destination, byte protocol, ReadOnlySpan<byte> transport)
    {
        Source = source;
        Destination = destination;
        Protocol = protocol;
        Transport = transport;
    }

    /// <summary>The quoted packet's source: our address, for a packet we sent.</summary>
    public NetAddress Source { get; }

    /// <summary>The quoted packet's destination: the peer.</summary>
    public NetAddress Destination { get; }

    /// <summary>The transport protocol (after IPv6 extension headers).</summary>
    public byte Protocol { get; }

    /// <summary>The quoted transport header and whatever data follows it: at least <see cref="MinTransportBytes"/> bytes.</summary>
    public ReadOnlySpan<byte> Transport { get; }

    /// <summary>
    /// Parses <paramref name="quoted"/> as an IPv4 (<paramref name="ipv6"/> false) or IPv6
    /// packet. Fails when the header is malformed, the quote is a non-first fragment, or fewer
    /// than <see cref="MinTransportBytes"/> bytes of transport header are quoted.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> quoted, bool ipv6, out QuotedPacket packet)
    {
        packet = default;
        return ipv6 ? TryParseIPv6(quoted, out packet) : TryParseIPv4(quoted, out packet);
    }

    private static bool TryParseIPv4(ReadOnlySpan<byte> quoted, out QuotedPacket packet)
    {
        packet = default;
        if (quoted.Length < IpProtocol.Ipv4HeaderLength || quoted[0] >> 4 != 4)
        {
            return false;
        }
        int headerLength = (quoted[0] & 0x0F) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(quoted[2..]);
        bool firstFragment = (BinaryPrimitives.ReadUInt16BigEndian(quoted[6..]) & 0x1FFF) == 0;
        if (headerLength < IpProtocol.Ipv4HeaderLength || !firstFragment || total < headerLength + MinTransportBytes)
        {
            return false;
        }
        int end = Math.Min(total, quoted.Length); // the quote may be truncated, or padded
        if (end - headerLength < MinTransportBytes)
        {
            return false;
        }
        packet = new QuotedPacket(
            NetAddress.FromIPv4(BinaryPrimitives.ReadUInt32BigEndian(quoted[12..])),
            NetAddress.FromIPv4(BinaryPrimitives.ReadUInt32BigEndian(quoted[16..])),
            quoted[9],
            quoted[headerLength..end]);
        return true;
    }

    private static bool TryParseIPv6(ReadOnlySpan<byte> quoted, out QuotedPacket packet)
    {
        packet = default;
        if (quoted.Length < IpProtocol.Ipv6HeaderLength || quoted[0] >> 4 != 6)
        {
            return false;
        }
        var source = NetAddress.FromBytes(quoted.Slice(8, 16));
        var destination = NetAddress.FromBytes(quoted.Slice(24, 16));
        if (source.IsIPv4 || destination.IsIPv4)
        {
            return false; // IPv4-mapped addresses never appear in IPv6 headers we send
        }
        int end = Math.Min(IpProtocol.Ipv6HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(quoted[4..]), quoted.Length);
        byte next = quoted[6];
        int offset = IpProtocol.Ipv6HeaderLength;
        for (int i = 0; i <= MaxExtensionHeaders; i++)
        {
            switch (next)
            {
                case IpProtocol.HopByHopOptions:
                case IpProtocol.DestinationOptions:
                case IpProtocol.Routing:
                    if (end - offset < 8)
                    {
                        return false;
                    }
                    next = quoted[offset];
                    offset += (quoted[offset + 1] + 1) * 8;
                    continue;
                case IpProtocol.Fragment:
                    if (end - offset < IpProtocol.FragmentHeaderLength ||
                        (BinaryPrimitives.ReadUInt16BigEndian(quoted[(offset + 2)..]) & 0xFFF8) != 0)
                    {
                        return false;
                    }
                    next = quoted[offset];
                    offset += IpProtocol.FragmentHeaderLength;
                    continue;
                default:
                    if (end - offset < MinTransportBytes)
                    {
                        return false;
                    }
                    packet = new QuotedPacket(source, destination, next, quoted[offset..end]);
                    return true;
            }
        }
        return false;
    }
}
