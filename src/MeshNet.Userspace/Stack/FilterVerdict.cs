namespace MeshNet.Userspace.Stack;

/// <summary>What an <see cref="IInboundPacketFilter"/> decides about an inbound datagram.</summary>
public enum FilterVerdict
{
    /// <summary>Deliver the datagram to its transport.</summary>
    Accept,

    /// <summary>Drop the datagram silently.</summary>
    Drop,

    /// <summary>
    /// Drop the datagram and answer with an ICMP destination unreachable "administratively
    /// prohibited" (IPv4 type 3 code 13, ICMPv6 type 1 code 1), rate-limited like every ICMP error
    /// the stack sends, so that the sender fails at once instead of timing out. The stack never
    /// answers an ICMP message this way (it drops it instead).
    /// </summary>
    Reject,
}
