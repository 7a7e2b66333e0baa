namespace MeshNet.Coordination.Storage;

/// <summary>
/// A consistent snapshot of one tailnet, read in one transaction: what a bus loads.
/// </summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Nodes">Its nodes, by id, with live state and revisions.</param>
/// <param name="Policy">Its saved policy, or null.</param>
/// <param name="Removals">Nodes removed after <paramref name="LogFloor"/>, with the revision of each removal.</param>
/// <param name="Revision">The tailnet's revision (the head of its change log).</param>
/// <param name="LogFloor">
/// The change log is complete after this revision: entries up to it may have been pruned, so a
/// node that last saw an older revision cannot be caught up from the log.
/// </param>
public sealed record StoredTailnetState(StoredTailnet Tailnet, IReadOnlyList<StoredNode> Nodes, StoredPolicy? Policy,
    IReadOnlyList<(ulong NodeId, ulong Revision)> Removals, ulong Revision, ulong LogFloor);
