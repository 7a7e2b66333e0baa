namespace MeshNet.Userspace.Stack;

/// <summary>Why the stack dropped a packet. Each reason has its own counter in <see cref="IpStackCounters"/>.</summary>
public enum StackDropReason
{
    // ---- IP ----

    /// <summary>Shorter than an IP header, or than the length its header claims.</summary>
    IpTruncated,

    /// <summary>Version field neither 4 nor 6.</summary>
    IpBadVersion,

    /// <summary>IPv4 header length field below 5 words or beyond the packet.</summary>
    IpBadHeaderLength,

    /// <summary>IPv4 header checksum mismatch.</summary>
    IpBadChecksum,

    /// <summary>Destination is not one of the stack's addresses.</summary>
    IpNotForUs,

    /// <summary>Source is a multicast, broadcast, unspecified or one of our own addresses.</summary>
    IpBadSource,

    /// <summary>An IPv6 extension header that is malformed or not supported.</summary>
    IpBadExtensionHeader,

    /// <summary>A transport protocol the stack does not speak.</summary>
    IpUnknownProtocol,

    /// <summary>A fragment with bad offsets or lengths (beyond 65535, misaligned, or contradicting others).</summary>
    FragmentMalformed,

    /// <summary>
    /// Fragments dropped for lack of room: the reassembly memory limit, the stack's memory budget,
    /// the limit on concurrent datagrams (the oldest incomplete datagrams are dropped first) or on
    /// fragments per datagram.
    /// </summary>
    FragmentBudgetExceeded,

    /// <summary>An incomplete datagram's fragments expired.</summary>
    FragmentTimeout,

    /// <summary>
    /// A fragment that overlaps another of the same datagram without being a duplicate of data
    /// already held: the whole datagram is dropped (RFC 5722; also applied to IPv4), and each of
    /// its fragments counts here.
    /// </summary>
    FragmentOverlap,

    /// <summary>A fragment whose data was already held (an exact or subset duplicate): ignored, the datagram is kept.</summary>
    FragmentDuplicate,

    /// <summary>A packet written into the stack after it was disposed.</summary>
    StackDisposed,

    /// <summary>A packet whose processing threw an unexpected exception (a bug; it is logged).</summary>
    StackInternalError,

    // ---- ICMP ----

    /// <summary>ICMP/ICMPv6 message too short or with a bad checksum.</summary>
    IcmpMalformed,

    /// <summary>An ICMP error the stack would have sent but the rate limit suppressed.</summary>
    IcmpRateLimited,

    /// <summary>
    /// A valid ICMP message the stack does not act on: echo replies, neighbor discovery (the link
    /// is point-to-point), redirects, parameter problems, unknown types.
    /// </summary>
    IcmpIgnored,

    /// <summary>An ICMP error whose quoted packet is not one the stack could have sent (too short, malformed, not from our address).</summary>
    IcmpBadQuote,

    // ---- UDP ----

    /// <summary>UDP header too short, length field wrong, or checksum mismatch.</summary>
    UdpMalformed,

    /// <summary>No socket bound to the destination port (port unreachable is sent, rate-limited).</summary>
    UdpNoListener,

    /// <summary>The receiving socket's queue or the stack's memory budget was full.</summary>
    UdpReceiveQueueFull,

    // ---- TCP ----

    /// <summary>TCP header too short, bad data offset, or checksum mismatch.</summary>
    TcpMalformed,

    /// <summary>Malformed TCP options.</summary>
    TcpBadOptions,

    /// <summary>An impossible flag combination (SYN+FIN, SYN+RST, no ACK where one is required...).</summary>
    TcpBadFlags,

    /// <summary>A segment for no connection and no listener (answered with RST).</summary>
    TcpNoConnection,

    /// <summary>A segment outside the receive window (answered with an ACK).</summary>
    TcpOutOfWindow,

    /// <summary>An ACK for data never sent, or too old.</summary>
    TcpUnacceptableAck,

    /// <summary>Rejected by PAWS (an old timestamp).</summary>
    TcpPawsRejected,

    /// <summary>A RST or SYN that fails the RFC 5961 checks (answered with a challenge ACK).</summary>
    TcpChallenged,

    /// <summary>A SYN dropped because the listener's backlog and SYN cookies could not take it.</summary>
    TcpSynDropped,

    /// <summary>Out-of-order data dropped because the connection's or stack's buffer budget was reached.</summary>
    TcpBufferFull,

    /// <summary>A connection refused because the stack holds <see cref="TcpStackOptions.MaxConnections"/>.</summary>
    TcpConnectionLimit,

    // ---- filter ----

    /// <summary>
    /// Denied by <see cref="IpStackOptions.InboundFilter"/> (the filter counts why); a rejected
    /// datagram is answered with ICMP "administratively prohibited", rate-limited.
    /// </summary>
    FilterDenied,
}
