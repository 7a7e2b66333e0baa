namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// Options of <see cref="PostgresCoordinationStore"/>: the session settings it gives every
/// connection it opens, and the size of the pool that renews leases. Read once, when the store
/// is created; changing them afterwards has no effect.
/// </summary>
public sealed class PostgresStoreOptions
{
    /// <summary>
    /// The longest a statement waits for a row lock (<c>lock_timeout</c>) before it fails; default
    /// 2 seconds. Bounds how long a write, a renewal or a takeover can be held up by another
    /// transaction. At least a millisecond.
    /// </summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a transaction may sit idle before the database ends its session
    /// (<c>idle_in_transaction_session_timeout</c>); default 2 seconds. A server that pauses (a
    /// GC pause, a stopped process, a cut network) while its transaction holds a row lock thus
    /// releases the lock soon, so that it cannot block the takeover of its tailnets for long.
    /// At least a millisecond.
    /// </summary>
    public TimeSpan IdleInTransactionTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a command may run before it is cancelled (Npgsql's <c>Command Timeout</c>, whole
    /// seconds, rounded up); default 30 seconds. Callers' cancellation tokens apply as well.
    /// </summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The most connections of the separate pool that only lease renewals use; default 2. A busy
    /// main pool never delays a renewal. Between 1 and 100.
    /// </summary>
    public int RenewalPoolSize { get; set; } = 2;

    /// <summary>Checks every property; throws an <see cref="ArgumentException"/> naming the first bad one.</summary>
    internal void Validate()
    {
        if (LockTimeout < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentException($"PostgresStoreOptions.LockTimeout must be at least 1 ms, not {LockTimeout}.", nameof(LockTimeout));
        }
        if (IdleInTransactionTimeout < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentException($"PostgresStoreOptions.IdleInTransactionTimeout must be at least 1 ms, not {IdleInTransactionTimeout}.",
                nameof(IdleInTransactionTimeout));
        }
        if (CommandTimeout < TimeSpan.FromSeconds(1) || CommandTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"PostgresStoreOptions.CommandTimeout must be between 1 second and 1 hour, not {CommandTimeout}.",
                nameof(CommandTimeout));
        }
        if (RenewalPoolSize is < 1 or > 100)
        {
            throw new ArgumentException($"PostgresStoreOptions.RenewalPoolSize must be between 1 and 100, not {RenewalPoolSize}.", nameof(RenewalPoolSize));
        }
    }
}
