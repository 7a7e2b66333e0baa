namespace MeshNet.Coordination.Storage;

/// <summary>
/// What guards a durable write of one tailnet: the epoch of the lease the writer holds. A store
/// applies the write only while the tailnet's lease still has this epoch and has not expired by
/// the database's clock, in the same transaction that advances the tailnet's revision; otherwise
/// nothing is written and the result is <see cref="FencedStatus.Fenced"/>.
/// </summary>
/// <param name="Tailnet">The tailnet written.</param>
/// <param name="Epoch">The epoch of the writer's lease.</param>
/// <param name="IdempotencyKey">
/// Optional: a key naming the request. A write whose key is already in the tailnet's change log
/// is not applied again (<see cref="FencedStatus.Duplicate"/> with the earlier revision).
/// At most 128 characters.
/// </param>
public readonly record struct TailnetFence(string Tailnet, ulong Epoch, string? IdempotencyKey = null)
{
    /// <summary>The longest idempotency key accepted.</summary>
    public const int MaxIdempotencyKeyLength = 128;

    /// <summary>The same fence with an idempotency key.</summary>
    public TailnetFence WithKey(string? idempotencyKey) => this with { IdempotencyKey = idempotencyKey };
}
