using System.Buffers.Binary;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Icmp;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// What a packet filter needs to know about one IP datagram, parsed once by the stack: its
/// flow, the TCP flags, the ICMP type and code, and for ICMP errors the flow of the packet the
/// error quotes. A plain value (no references): building and passing it never allocates.
/// </summary>
public readonly struct DatagramHeaders
{
    /// <summary>TCP FIN.</summary>
    public const byte TcpFin = 0x01;

    /// <summary>TCP SYN.</summary>
    public const byte TcpSyn = 0x02;

    /// <summary>TCP RST.</summary>
    public const byte TcpRst = 0x04;

    /// <summary>TCP ACK.</summary>
    public const byte TcpAck = 0x10;

    /// <summary>Creates a description (for filters' tests; the stack uses <see cref="Parse"/>).</summary>
    /// <param name="flow">The datagram's flow.</param>
    /// <param name="tcpFlags">The TCP control bits (TCP only).</param>
    /// <param name="icmpType">The ICMP type (ICMP and ICMPv6 only).</param>
    /// <param name="icmpCode">The ICMP code (ICMP and ICMPv6 only).</param>
    /// <param name="quotedFlow">For an ICMP error, the flow of the quoted packet (as it was sent: from us); else default.</param>
    /// <param name="truncated">The transport header was too short to read (the fields are zero).</param>
    public DatagramHeaders(FlowTuple flow, byte tcpFlags = 0, byte icmpType = 0, byte icmpCode = 0, FlowTuple quotedFlow = default,
        bool truncated = false)
    {
        Flow = flow;
        TcpFlags = tcpFlags;
        IcmpType = icmpType;
        IcmpCode = icmpCode;
        QuotedFlow = quotedFlow;
        IsTruncated = truncated;
    }

    /// <summary>The datagram's flow, in the direction it travels.</summary>
    public FlowTuple Flow { get; }

    /// <summary>The TCP control bits (<see cref="TcpSyn"/>...); 0 for other protocols.</summary>
    public byte TcpFlags { get; }

    /// <summary>The ICMP or ICMPv6 type; 0 for other protocols.</summary>
    public byte IcmpType { get; }

    /// <summary>The ICMP or ICMPv6 code; 0 for other protocols.</summary>
    public byte IcmpCode { get; }

    /// <summary>
    /// For an ICMP error, the flow of the packet it quotes (source: the address that sent the
    /// quoted packet); default when the datagram is no ICMP error or the quote cannot be parsed.
    /// </summary>
    public FlowTuple QuotedFlow { get; }

    /// <summary>The transport header is too short (or, for an ICMP error, the quote unreadable): only <see cref="Flow"/>'s addresses and protocol are known.</summary>
    public bool IsTruncated { get; }

    /// <summary>True for IPv6.</summary>
    public bool IsIPv6 => Flow.Destination.IsIPv6;

    /// <summary>True for ICMP (IPv4) or ICMPv6 (IPv6) messages.</summary>
    public bool IsIcmp => Flow.Protocol == (IsIPv6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp);

    /// <summary>A TCP segment with SYN and without ACK: the opening of a connection.</summary>
    public bool IsTcpConnectionRequest => Flow.Protocol == IpProtocol.Tcp && (TcpFlags & (TcpSyn | TcpAck | TcpRst)) == TcpSyn;

    /// <summary>An ICMP or ICMPv6 echo request.</summary>
    public bool IsIcmpEchoRequest => IsIcmp && !IsTruncated && IcmpType == (IsIPv6 ? IcmpMessage.V6EchoRequest : IcmpMessage.V4EchoRequest);

    /// <summary>An ICMP or ICMPv6 echo reply.</summary>
    public bool IsIcmpEchoReply => IsIcmp && !IsTruncated && IcmpType == (IsIPv6 ? IcmpMessage.V6EchoReply : IcmpMessage.V4EchoReply);

    /// <summary>
    /// An ICMP error message (destination unreachable, packet too big, time exceeded, parameter
    /// problem; IPv4 source quench and redirect too).
    /// </summary>
    public bool IsIcmpError => IsIcmp && !IsTruncated && (IsIPv6
        ? IcmpType < 128
        : IcmpType is IcmpMessage.V4DestinationUnreachable or IcmpMessage.V4SourceQuench or IcmpMessage.V4Redirect
            or IcmpMessage.V4TimeExceeded or IcmpMessage.V4ParameterProblem);

    /// <summary>
    /// Parses the transport header of a datagram from <paramref name="source"/> to
    /// <paramref name="destination"/> whose protocol (IPv6: last next header) is
    /// <paramref name="protocol"/> and whose transport header and data are
    /// <paramref name="transport"/>. Never throws: a header too short gives
    /// <see cref="IsTruncated"/>. Allocation-free.
    /// </summary>
    public static DatagramHeaders Parse(NetAddress source, NetAddress destination, byte protocol, ReadOnlySpan<byte> transport)
    {
        switch (protocol)
        {
            case IpProtocol.Tcp:
                if (transport.Length < 20)
                {
                    return Truncated(protocol, source, destination);
                }
                return new DatagramHeaders(new FlowTuple(protocol, source, BinaryPrimitives.ReadUInt16BigEndian(transport), destination,
                    BinaryPrimitives.ReadUInt16BigEndian(transport[2..])), tcpFlags: transport[13]);
            case IpProtocol.Udp:
                if (transport.Length < 8)
                {
                    return Truncated(protocol, source, destination);
                }
                return new DatagramHeaders(new FlowTuple(protocol, source, BinaryPrimitives.ReadUInt16BigEndian(transport), destination,
                    BinaryPrimitives.ReadUInt16BigEndian(transport[2..])));
            case IpProtocol.Icmp when source.IsIPv4:
            case IpProtocol.IcmpV6 when source.IsIPv6:
                return ParseIcmp(source, destination, protocol, transport);
            default:
                return new DatagramHeaders(new FlowTuple(protocol, source, 0, destination, 0));
        }
    }

    private static DatagramHeaders ParseIcmp(NetAddress source, NetAddress destination, byte protocol, ReadOnlySpan<byte> message)
    {
        if (message.Length < IcmpMessage.HeaderLength)
        {
            return Truncated(protocol, source, destination);
        }
        bool ipv6 = source.IsIPv6;
        byte type = message[0];
        byte code = message[1];
        if (IsEcho(ipv6, type))
        {
            ushort id = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
            return new DatagramHeaders(new FlowTuple(protocol, source, id, destination, id), icmpType: type, icmpCode: code);
        }
        var flow = new FlowTuple(protocol, source, 0, destination, 0);
        var headers = new DatagramHeaders(flow, icmpType: type, icmpCode: code);
        if (!headers.IsIcmpError)
        {
            return headers;
        }
        if (!QuotedPacket.TryParse(message[IcmpMessage.HeaderLength..], ipv6, out var quoted))
        {
            return new DatagramHeaders(flow, icmpType: type, icmpCode: code, truncated: true);
        }
        var inner = quoted.Transport;
        ushort sourcePort = 0;
        ushort destinationPort = 0;
        if (quoted.Protocol is IpProtocol.Tcp or IpProtocol.Udp)
        {
            sourcePort = BinaryPrimitives.ReadUInt16BigEndian(inner);
            destinationPort = BinaryPrimitives.ReadUInt16BigEndian(inner[2..]);
        }
        else if (quoted.Protocol == protocol && IsEcho(ipv6, inner[0]))
        {
            sourcePort = destinationPort = BinaryPrimitives.ReadUInt16BigEndian(inner[4..]);
        }
        var quotedFlow = new FlowTuple(quoted.Protocol, quoted.Source, sourcePort, quoted.Destination, destinationPort);
        return new DatagramHeaders(flow, icmpType: type, icmpCode: code, quotedFlow: quotedFlow);
    }

    private static bool IsEcho(bool ipv6, byte type) => ipv6
        ? type is IcmpMessage.V6EchoRequest or IcmpMessage.V6EchoReply
        : type is IcmpMessage.V4EchoRequest or IcmpMessage.V4EchoReply;

    private static DatagramHeaders Truncated(byte protocol, NetAddress source, NetAddress destination) =>
        new(new FlowTuple(protocol, source, 0, destination, 0), truncated: true);
}
