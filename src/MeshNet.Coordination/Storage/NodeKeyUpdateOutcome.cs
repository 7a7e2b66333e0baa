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
}
