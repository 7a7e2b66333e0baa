using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// What the IP layer tells a transport about a validated, reassembled inbound packet.
/// <see cref="Packet"/> is the whole IP packet (for quoting in ICMP errors); the transport's
/// own bytes are passed separately. Valid only during the call that receives it.
/// </summary>
internal readonly ref struct IpPacketInfo
{
    public IpPacketInfo(NetAddress source, NetAddress destination, byte protocol, byte hopLimit, byte trafficClass, ReadOnlySpan<byte> packet)
    {
        Source = source;
        Destination = destination;
        Protocol = protocol;
        HopLimit = hopLimit;
        TrafficClass = trafficClass;
        Packet = packet;
    }

    public NetAddress Source { get; }

    public NetAddress Destination { get; }

    /// <summary>IANA protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6.</summary>
    public byte Protocol { get; }

    /// <summary>TTL (IPv4) or hop limit (IPv6).</summary>
    public byte HopLimit { get; }

    /// <summary>TOS (IPv4) or traffic class (IPv6), including the ECN bits.</summary>
    public byte TrafficClass { get; }

    public bool IsIPv6 => Destination.IsIPv6;

    /// <summary>The whole IP packet as received (the first fragment's header for reassembled datagrams).</summary>
    public ReadOnlySpan<byte> Packet { get; }
}
