using System.Collections.Immutable;
using MeshNet.Control.V1;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;

namespace MeshNet.Tests.Filter;

/// <summary>Rules, chunks and datagrams for the filter tests.</summary>
internal static class FilterTestData
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte IcmpV6 = 58;

    public static FilterRule Rule(string[] sources, (string Prefix, uint First, uint Last)[] destinations, params uint[] protocols)
    {
        var rule = new FilterRule();
        rule.Sources.Add(sources);
        foreach (var (prefix, first, last) in destinations)
        {
            rule.Destinations.Add(new PortRange { Prefix = prefix, FirstPort = first, LastPort = last });
        }
        rule.Protocols.Add(protocols);
        return rule;
    }

    public static ImmutableSortedDictionary<string, FilterChunk> Chunks(params FilterRule[] rules)
    {
        var chunk = new FilterChunk { Name = "test" };
        chunk.Rules.Add(rules);
        return ImmutableSortedDictionary<string, FilterChunk>.Empty.WithComparers(StringComparer.Ordinal).Add(chunk.Name, chunk);
    }

    public static ImmutableSortedDictionary<string, FilterChunk> NoChunks =>
        ImmutableSortedDictionary<string, FilterChunk>.Empty.WithComparers(StringComparer.Ordinal);

    public static NetAddress A(string text) => NetAddress.Parse(text);

    public static FlowTuple Flow(byte protocol, string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(protocol, A(source), sourcePort, A(destination), destinationPort);

    public static DatagramHeaders TcpSegment(string source, ushort sourcePort, string destination, ushort destinationPort, byte flags) =>
        new(Flow(Tcp, source, sourcePort, destination, destinationPort), tcpFlags: flags);

    public static DatagramHeaders UdpDatagram(string source, ushort sourcePort, string destination, ushort destinationPort) =>
        new(Flow(Udp, source, sourcePort, destination, destinationPort));

    public static DatagramHeaders Echo(string source, string destination, ushort id, bool request)
    {
        bool v6 = A(source).IsIPv6;
        byte type = v6 ? (request ? (byte)128 : (byte)129) : (request ? (byte)8 : (byte)0);
        return new DatagramHeaders(Flow(v6 ? IcmpV6 : Icmp, source, id, destination, id), icmpType: type);
    }

    /// <summary>An ICMP destination unreachable from <paramref name="source"/> to <paramref name="destination"/> quoting <paramref name="quoted"/>.</summary>
    public static DatagramHeaders Unreachable(string source, string destination, FlowTuple quoted)
    {
        bool v6 = A(source).IsIPv6;
        return new DatagramHeaders(Flow(v6 ? IcmpV6 : Icmp, source, 0, destination, 0), icmpType: v6 ? (byte)1 : (byte)3,
            icmpCode: v6 ? (byte)1 : (byte)13, quotedFlow: quoted);
    }

    public const byte Syn = DatagramHeaders.TcpSyn;
    public const byte Ack = DatagramHeaders.TcpAck;
    public const byte SynAck = DatagramHeaders.TcpSyn | DatagramHeaders.TcpAck;
    public const byte Fin = DatagramHeaders.TcpFin | DatagramHeaders.TcpAck;
    public const byte Rst = DatagramHeaders.TcpRst;
}
