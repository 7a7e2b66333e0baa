namespace MeshNet;

/// <summary>
/// Why the node's packet filter dropped an inbound packet while the tailnet policy is enforced
/// (<see cref="MeshNodeStatus.PolicyDenials"/>).
/// </summary>
public enum MeshPolicyDenialReason
{
    /// <summary>
    /// No rule of the policy admits the packet, and it belongs to no flow this node opened: a
    /// new connection or datagram from a node the policy does not allow (a TCP connection
    /// request or a UDP datagram is answered with ICMP "administratively prohibited"), or a
    /// packet of a connection the policy no longer allows.
    /// </summary>
    NoRule,

    /// <summary>An ICMP echo reply or error that concerns no flow this node opened or the policy admits.</summary>
    UntrackedIcmp,

    /// <summary>A transport header too short to read, or an ICMP error whose quoted packet cannot be parsed.</summary>
    Malformed,
}
