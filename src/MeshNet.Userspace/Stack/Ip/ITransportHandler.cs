namespace MeshNet.Userspace.Stack.Ip;

/// <summary>A transport protocol (TCP, UDP) as the IP layer sees it.</summary>
internal interface ITransportHandler
{
    /// <summary>
    /// Handles one inbound packet for this protocol. <paramref name="payload"/> is the
    /// transport header and data (already reassembled), valid only during the call, and may be
    /// modified. Called on the link's thread; must not block; must not throw for bad input
    /// (drop and count instead).
    /// </summary>
    void OnPacket(in IpPacketInfo ip, Span<byte> payload);

    /// <summary>
    /// An ICMP error (destination unreachable, packet too big, time exceeded...) quoting one of
    /// our packets of this protocol: <paramref name="quoted"/> is the quoted IP packet (header
    /// and at least 8 bytes of transport header).
    /// </summary>
    void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted);
}

/// <summary>The ICMP errors a transport cares about.</summary>
internal enum IcmpErrorKind
{
    /// <summary>Port or protocol unreachable: the peer says nobody is there.</summary>
    PortUnreachable,

    /// <summary>Network or host unreachable (and the other unreachable codes).</summary>
    HostUnreachable,

    /// <summary>Fragmentation needed (IPv4) or packet too big (IPv6), with the next-hop MTU.</summary>
    PacketTooBig,

    /// <summary>TTL or hop limit exceeded, or reassembly time exceeded.</summary>
    TimeExceeded,

    /// <summary>
    /// Communication administratively prohibited (IPv4 codes 9, 10, 13; ICMPv6 code 1): a
    /// packet filter at the destination refused the packet. Reported as
    /// <see cref="System.Net.Sockets.SocketError.AccessDenied"/>.
    /// </summary>
    AdministrativelyProhibited,
}
