namespace MeshNet.Coordination.Storage;

/// <summary>An entry of a tailnet's change log: one committed fenced write.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Revision">Its revision: consecutive per tailnet, starting at 1.</param>
/// <param name="Epoch">The epoch of the lease it was written under.</param>
/// <param name="Kind">What changed (<see cref="ChangeKinds"/>).</param>
/// <param name="NodeId">The node it concerns, or 0.</param>
/// <param name="Detail">Kind-specific detail (a policy version, an auth key id, a count).</param>
/// <param name="IdempotencyKey">The request's idempotency key, if it had one.</param>
/// <param name="Committed">When it was committed, by the database's clock.</param>
public sealed record StoredChange(string Tailnet, ulong Revision, ulong Epoch, string Kind, ulong NodeId, string Detail, string? IdempotencyKey,
    DateTimeOffset Committed);
