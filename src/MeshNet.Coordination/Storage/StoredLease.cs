namespace MeshNet.Coordination.Storage;

/// <summary>A tailnet's lease as stored.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Owner">The server holding it (null: none ever, or released).</param>
/// <param name="OwnerInstance">The owner's process instance.</param>
/// <param name="OwnerUrl">The owner's URL, from its server row (null when unknown).</param>
/// <param name="Epoch">The epoch of the latest grant.</param>
/// <param name="ExpiresIn">Time left by the database's clock (negative: expired).</param>
/// <param name="Revision">The head of the tailnet's change log.</param>
/// <param name="LogFloor">The change log is complete after this revision.</param>
/// <param name="Quarantined">True when nobody may claim it.</param>
/// <param name="QuarantineReason">Why it was quarantined.</param>
/// <param name="GrantedAt">When the current epoch was granted.</param>
/// <param name="RenewedAt">When it was last renewed (or granted).</param>
/// <param name="MovedAt">When it was last handed over by a planned move (null: never).</param>
public sealed record StoredLease(string Tailnet, string? Owner, string? OwnerInstance, string? OwnerUrl, ulong Epoch, TimeSpan ExpiresIn,
    ulong Revision, ulong LogFloor, bool Quarantined, string QuarantineReason, DateTimeOffset? GrantedAt, DateTimeOffset? RenewedAt,
    DateTimeOffset? MovedAt)
{
    /// <summary>
    /// How long ago the owner's last heartbeat was, by the database's clock (null: no owner). An
    /// owner whose heartbeat is older than its renewal interval has most likely died: its lease
    /// merely has not expired yet.
    /// </summary>
    public TimeSpan? OwnerHeartbeatAge { get; init; }
}
