namespace MeshNet.Coordination.Storage;

/// <summary>
/// The live part of a node's record, written in batches by its tailnet's owner so that another
/// server taking the tailnet over starts with the same view.
/// </summary>
/// <param name="NodeId">The node.</param>
/// <param name="Online">True while it has a map stream.</param>
/// <param name="Endpoints">Its WireGuard endpoints ("ip:port"), most preferred first.</param>
/// <param name="Instance">The id of its current run (empty: unknown).</param>
/// <param name="LastSeen">When its last map stream ended (null: keep the stored value).</param>
public sealed record NodeLiveState(ulong NodeId, bool Online, IReadOnlyList<string> Endpoints, string Instance, DateTimeOffset? LastSeen);
