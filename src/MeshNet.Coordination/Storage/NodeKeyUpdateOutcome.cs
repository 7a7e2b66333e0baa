namespace MeshNet.Coordination.Storage;

/// <summary>What <see cref="ICoordinationStore.UpdateNodeKeyAsync"/> did.</summary>
public enum NodeKeyUpdateOutcome
{
    /// <summary>The key was replaced.</summary>
    Updated,

    /// <summary>No node has that id with the expected old key.</summary>
    NodeMissing,

    /// <summary>Another node has the new key.</summary>
    NodeKeyTaken,

    /// <summary>
    /// The auth key given to authorize the change is not usable (unknown, of another tailnet,
    /// revoked, expired, or a one-off key already used); nothing was changed.
    /// </summary>
    AuthKeyUnusable,
}
