namespace MeshNet.Coordination;

/// <summary>Why a coordination operation failed (<see cref="CoordinationException.ErrorCode"/>).</summary>
public enum CoordinationErrorCode
{
    /// <summary>A field is malformed, out of range or too large; the message names it.</summary>
    InvalidRequest,

    /// <summary>The tailnet, node or auth key does not exist.</summary>
    NotFound,

    /// <summary>A tailnet of that name exists already.</summary>
    AlreadyExists,

    /// <summary>A new node registered without an auth key.</summary>
    AuthKeyRequired,

    /// <summary>The auth key is not known (or malformed).</summary>
    AuthKeyUnknown,

    /// <summary>The auth key's lifetime is over.</summary>
    AuthKeyExpired,

    /// <summary>A one-off auth key was already used.</summary>
    AuthKeyUsedUp,

    /// <summary>The auth key was revoked.</summary>
    AuthKeyRevoked,

    /// <summary>The node asked for tags it may not have.</summary>
    TagsNotPermitted,

    /// <summary>The node's key has expired.</summary>
    NodeKeyExpired,

    /// <summary>The node is not registered (or was removed, or its key replaced).</summary>
    NodeNotRegistered,

    /// <summary>The policy does not parse or validate (<see cref="CoordinationException.PolicyLine"/>, <see cref="CoordinationException.PolicyColumn"/>).</summary>
    InvalidPolicy,

    /// <summary>The policy's own tests fail; it was not saved.</summary>
    PolicyTestFailed,

    /// <summary>Another server serves the tailnet (<see cref="CoordinationException.OwnerUrl"/>).</summary>
    NotOwner,

    /// <summary>No server serves the tailnet right now; retry after <see cref="CoordinationException.RetryAfter"/>.</summary>
    NoOwner,

    /// <summary>The tailnet is quarantined: nobody serves it until an administrator releases it.</summary>
    Quarantined,

    /// <summary>The tailnet exceeded one of its limits; retry after <see cref="CoordinationException.RetryAfter"/>.</summary>
    RateLimited,

    /// <summary>The operation raced another one (a concurrent registration with the same key); retry it.</summary>
    Conflict,

    /// <summary>A capacity limit was reached (no free address, too many streams).</summary>
    ResourceExhausted,

    /// <summary>The service cannot do it now (stopping, a stream replaced or too slow, a bus unloaded); retry.</summary>
    Unavailable,

    /// <summary>A proof of key (such as a rotation's proof with the old key) does not verify.</summary>
    BadProof,

    /// <summary>This server cannot reach the coordination store (cut off from the database): retry at another server.</summary>
    StoreUnreachable,
}
