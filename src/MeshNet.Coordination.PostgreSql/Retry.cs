namespace MeshNet.Coordination.PostgreSql;

/// <summary>Whether an operation may run again on a new connection when its connection broke (see <see cref="PostgresConnections.RunAsync{T}"/>).</summary>
internal enum Retry
{
    /// <summary>Never: a single statement whose answer says whether this call changed something (a compare-and-set).</summary>
    Never,

    /// <summary>
    /// Once: a read, an idempotent statement, or a transaction (which commits nothing unless
    /// its <c>COMMIT</c> was sent; a failure from then on is never retried: its outcome is unknown).
    /// </summary>
    Once,
}
