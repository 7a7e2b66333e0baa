namespace MeshNet.Coordination.Storage;

/// <summary>The result of <see cref="ICoordinationStore.InsertNodeAsync"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Node">The stored node (with its id) when <paramref name="Outcome"/> is <see cref="NodeInsertOutcome.Inserted"/>.</param>
public readonly record struct NodeInsertResult(NodeInsertOutcome Outcome, StoredNode? Node);
