namespace MeshNet.Coordination.Storage;

/// <summary>The kinds of entries in a tailnet's change log (<see cref="StoredChange.Kind"/>).</summary>
public static class ChangeKinds
{
    /// <summary>A node joined (<see cref="StoredChange.NodeId"/>).</summary>
    public const string NodeAdded = "node-added";

    /// <summary>A node's key was rotated.</summary>
    public const string NodeKeyRotated = "node-key-rotated";

    /// <summary>A node's host name or tags changed.</summary>
    public const string NodeUpdated = "node-updated";

    /// <summary>A node's key expiry was set (an administrator expired it).</summary>
    public const string NodeKeyExpiry = "node-key-expiry";

    /// <summary>A node was removed (its id stays in the log as a tombstone).</summary>
    public const string NodeRemoved = "node-removed";

    /// <summary>Live state (online, endpoints, run id, last seen) of one or more nodes.</summary>
    public const string LiveState = "live-state";

    /// <summary>The policy was saved (the detail is its version).</summary>
    public const string PolicySaved = "policy-saved";

    /// <summary>An auth key was created (the detail is its id).</summary>
    public const string AuthKeyCreated = "auth-key-created";

    /// <summary>An auth key was revoked (the detail is its id).</summary>
    public const string AuthKeyRevoked = "auth-key-revoked";
}
