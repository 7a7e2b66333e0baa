namespace MeshNet.Coordination.Storage;

/// <summary>What <see cref="ICoordinationStore.InsertNodeAsync"/> did.</summary>
public enum NodeInsertOutcome
{
    /// <summary>The node was inserted (and the auth key's use counted).</summary>
    Inserted,

    /// <summary>The tailnet does not exist (any more).</summary>
    TailnetMissing,

    /// <summary>Another node has this node key.</summary>
    NodeKeyTaken,

    /// <summary>Another node of the tailnet has this name.</summary>
    NameTaken,

    /// <summary>Another node of the tailnet has one of these addresses.</summary>
    AddressTaken,

    /// <summary>The auth key is missing, revoked, expired or (one-off) already used.</summary>
    AuthKeyUnusable,
}
