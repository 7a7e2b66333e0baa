namespace MeshNet;

/// <summary>Why a <see cref="MeshException"/> was thrown.</summary>
public enum MeshErrorCode
{
    /// <summary>An unexpected failure inside the node (a bug, or an error with no better code); see the inner exception.</summary>
    InternalError = 0,

    /// <summary>The coordination service could not be reached (or did not answer) within the time allowed.</summary>
    ControlUnreachable,

    /// <summary>The node is not registered and no auth key was given (<see cref="MeshNodeOptions.AuthKey"/>).</summary>
    AuthKeyRequired,

    /// <summary>The coordination service does not know the auth key (or it is malformed).</summary>
    AuthKeyUnknown,

    /// <summary>The auth key's lifetime is over.</summary>
    AuthKeyExpired,

    /// <summary>The auth key is a one-off key that was already used.</summary>
    AuthKeyUsedUp,

    /// <summary>The auth key was revoked by an administrator.</summary>
    AuthKeyRevoked,

    /// <summary>The node asked for tags (<see cref="MeshNodeOptions.Tags"/>) that neither the auth key nor the tailnet's policy grant it.</summary>
    TagsNotPermitted,

    /// <summary>
    /// The node's key has expired (its lifetime ended, or an administrator expired it). The
    /// service accepts an expired key back only with a valid auth key: a node with
    /// <see cref="MeshNodeOptions.AuthKey"/> re-authenticates by itself (a failure then carries
    /// the auth key's code); without one, this code is thrown at start and reported by
    /// <see cref="MeshNode.GetStatus"/> (<see cref="MeshNodeStatus.LastControlError"/>) while running.
    /// </summary>
    NodeKeyExpired,

    /// <summary>
    /// The coordination service refused the node's calls for another reason: a bad proof of key,
    /// a clock too far from the server's, plain HTTP from a non-loopback address, an unsupported
    /// protocol, or a protocol violation. The message says which.
    /// </summary>
    ControlRejected,

    /// <summary>A host name given to <see cref="MeshNode.DialAsync(string, int, CancellationToken)"/> does not resolve to a node of the tailnet.</summary>
    PeerNotFound,

    /// <summary>The peer refused the connection: nothing listens on that port.</summary>
    ConnectionRefused,

    /// <summary>The peer reset the connection.</summary>
    ConnectionReset,

    /// <summary>The peer did not answer in time.</summary>
    TimedOut,

    /// <summary>The peer cannot be reached: it has no address of the family asked for, its key has expired, or the network reported it unreachable.</summary>
    HostUnreachable,

    /// <summary>The port is already in use on this node.</summary>
    AddressInUse,

    /// <summary>The node's configuration cannot be used (for example plain HTTP to a control URL that is not loopback).</summary>
    InvalidConfiguration,

    /// <summary>The state store could not be read or written (see the inner exception).</summary>
    StateStoreFailed,

    /// <summary>
    /// The tailnet policy does not allow this connection: the peer's packet filter refused it
    /// (it answered with ICMP "administratively prohibited"), so the dial failed at once.
    /// </summary>
    PolicyDenied,
}
