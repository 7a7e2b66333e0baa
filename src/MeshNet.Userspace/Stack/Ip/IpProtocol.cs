namespace MeshNet.Userspace.Stack.Ip;

/// <summary>IANA protocol and IPv6 next-header numbers the stack knows, and fixed header sizes.</summary>
internal static class IpProtocol
{
    public const byte HopByHopOptions = 0;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Routing = 43;
    public const byte Fragment = 44;
    public const byte IcmpV6 = 58;
    public const byte NoNextHeader = 59;
    public const byte DestinationOptions = 60;

    /// <summary>An IPv4 header without options.</summary>
    public const int Ipv4HeaderLength = 20;

    /// <summary>The fixed IPv6 header.</summary>
    public const int Ipv6HeaderLength = 40;

    /// <summary>The IPv6 fragment extension header.</summary>
    public const int FragmentHeaderLength = 8;

    /// <summary>The largest IP datagram (IPv4 total length, IPv6 payload length: no jumbograms).</summary>
    public const int MaxDatagram = 65535;

    /// <summary>The default TTL / hop limit of packets the stack sends (RFC 1700, as Linux).</summary>
    public const byte DefaultHopLimit = 64;
}
