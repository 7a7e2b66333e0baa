using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// Fenced writes and the change log they append to: each write of a tailnet advances its
/// revision under the writer's lease epoch (<see cref="TailnetFence"/>), in the transaction that
/// applies it and appends its entry to <c>tailnet_changes</c>; the log is read back by revision or
/// idempotency key and pruned below each tailnet's floor.
/// </summary>
/// <remarks>
/// <para>Thread-safe and stateless but for the shared <see cref="PostgresConnections"/>, which it
/// does not own; after they are disposed every call throws <see cref="ObjectDisposedException"/>.</para>
/// <para>Owns the revision and log floor of the <c>tailnet_leases</c> rows (the lease columns
/// belong to <see cref="PostgresLeaseStore"/>) and the rows of <c>tailnet_changes</c>.</para>
/// </remarks>
/// <param name="connections">The store's connections (not owned).</param>
internal sealed class PostgresFencing(PostgresConnections connections)
{
    private const string ChangeColumns = "tailnet, revision, epoch, kind, node_id, detail, idempotency_key, committed_at";

    /// <summary>
    /// One fenced write: in a READ COMMITTED transaction, advances the tailnet's revision under
    /// the fence's epoch (refused: <see cref="FencedStatus.Fenced"/>; no tailnet:
    /// <see cref="FencedStatus.NotApplied"/> with <paramref name="missingTailnet"/>), returns the
    /// earlier result of a write with the same idempotency key, runs <paramref name="body"/> with
    /// the new revision, appends the change-log entry and commits. The row lock the first
    /// statement takes orders the tailnet's writes, so each later statement sees every earlier
    /// write of the tailnet committed. A connection that breaks before the <c>COMMIT</c> is sent
    /// wrote nothing: the write runs once more on a new connection.
    /// </summary>
    /// <exception cref="ArgumentException">The fence is invalid (thrown at once, not through the task).</exception>
    public Task<FencedResult<T>> WriteAsync<T>(TailnetFence fence, string kind,
        Func<NpgsqlConnection, NpgsqlTransaction, ulong, Task<WriteStep<T>>> body, CancellationToken cancellationToken, T missingTailnet = default!)
    {
        Validate(fence);
        return connections.RunAsync(Retry.Once,
            (connection, attempt) => WriteOnAsync(connection, attempt, fence, kind, body, missingTailnet, cancellationToken), cancellationToken);
    }

    /// <summary>
    /// The fence and the sequence in one row operation: the next revision, or null when the
    /// lease has another epoch or has expired. Expiry is judged by <c>clock_timestamp()</c>, the
    /// database's clock when the row is actually updated (after any wait for its lock), not when
    /// the transaction began.
    /// </summary>
    public static async Task<ulong?> AdvanceAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, TailnetFence fence,
        CancellationToken cancellationToken)
    {
        var revision = await ScalarAsync(connection, transaction,
            "UPDATE tailnet_leases SET revision = revision + 1 WHERE tailnet = @t AND epoch = @e AND expires_at > clock_timestamp() RETURNING revision;",
            cancellationToken, ("@t", fence.Tailnet), ("@e", (long)fence.Epoch)).ConfigureAwait(false);
        return revision is null ? null : (ulong)(long)revision;
    }

    /// <summary>Throws <see cref="ArgumentException"/> when the fence names no tailnet or its idempotency key is empty or too long.</summary>
    public static void Validate(TailnetFence fence)
    {
        ArgumentException.ThrowIfNullOrEmpty(fence.Tailnet);
        if (fence.IdempotencyKey is { Length: 0 or > TailnetFence.MaxIdempotencyKeyLength })
        {
            throw new ArgumentException($"An idempotency key has 1 to {TailnetFence.MaxIdempotencyKeyLength} characters.", nameof(fence));
        }
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListChangesAsync"/>
    public Task<IReadOnlyList<StoredChange>> ListChangesAsync(string tailnet, ulong afterRevision, int limit, CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {ChangeColumns} FROM tailnet_changes WHERE tailnet = @t AND revision > @a ORDER BY revision LIMIT @l;",
            ReadChange, cancellationToken, ("@t", tailnet), ("@a", (long)afterRevision), ("@l", limit));

    /// <inheritdoc cref="PostgresCoordinationStore.FindChangeAsync"/>
    public async Task<StoredChange?> FindChangeAsync(string tailnet, string idempotencyKey, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync($"SELECT {ChangeColumns} FROM tailnet_changes WHERE tailnet = @t AND idempotency_key = @k;",
            ReadChange, cancellationToken, ("@t", tailnet), ("@k", idempotencyKey)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.PruneChangesAsync"/>
    public async Task<int> PruneChangesAsync(TimeSpan olderThan, int keep, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        return await connections.ExecuteAsync(
            """
            WITH floors AS (
                SELECT c.tailnet, MAX(c.revision) AS floor FROM tailnet_changes c JOIN tailnet_leases l ON l.tailnet = c.tailnet
                WHERE c.committed_at < now() - @older AND c.revision <= l.revision - @keep
                GROUP BY c.tailnet
            ), locked AS (
                SELECT l.tailnet, f.floor FROM tailnet_leases l JOIN floors f ON f.tailnet = l.tailnet
                WHERE f.floor > l.log_floor
                FOR UPDATE OF l SKIP LOCKED
            ), raised AS (
                UPDATE tailnet_leases l SET log_floor = locked.floor FROM locked WHERE l.tailnet = locked.tailnet
                RETURNING l.tailnet, l.log_floor
            )
            DELETE FROM tailnet_changes c USING raised r WHERE c.tailnet = r.tailnet AND c.revision <= r.log_floor;
            """, cancellationToken, ("@older", olderThan), ("@keep", (long)keep)).ConfigureAwait(false);
    }

    private static async Task<FencedResult<T>> WriteOnAsync<T>(NpgsqlConnection connection, Attempt attempt, TailnetFence fence, string kind,
        Func<NpgsqlConnection, NpgsqlTransaction, ulong, Task<WriteStep<T>>> body, T missingTailnet, CancellationToken cancellationToken)
    {
        await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
        var revision = await AdvanceAsync(connection, transaction, fence, cancellationToken).ConfigureAwait(false);
        if (revision is null)
        {
            bool exists = await ScalarAsync(connection, transaction, "SELECT 1 FROM tailnets WHERE name = @t;", cancellationToken, ("@t", fence.Tailnet))
                .ConfigureAwait(false) is not null;
            return exists ? FencedResult<T>.Fenced(missingTailnet) : FencedResult<T>.NotApplied(missingTailnet);
        }
        if (fence.IdempotencyKey is { } key)
        {
            var earlier = await QueryAsync(connection, transaction,
                "SELECT revision, detail FROM tailnet_changes WHERE tailnet = @t AND idempotency_key = @k;",
                reader => ((ulong)reader.GetInt64(0), reader.GetString(1)), cancellationToken, ("@t", fence.Tailnet), ("@k", key)).ConfigureAwait(false);
            if (earlier.Count > 0)
            {
                return new FencedResult<T>(FencedStatus.Duplicate, earlier[0].Item1, default!, earlier[0].Item2); // rolled back
            }
        }
        var step = await body(connection, transaction, revision.Value).ConfigureAwait(false);
        if (!step.Apply)
        {
            return FencedResult<T>.NotApplied(step.Value); // disposing the transaction rolls it back: no revision used
        }
        await ExecuteAsync(connection, transaction,
            $"""
            INSERT INTO tailnet_changes ({ChangeColumns})
            VALUES (@t, @r, @e, @k, @n, @d, @i, {DbNow});
            """, cancellationToken, ("@t", fence.Tailnet), ("@r", (long)revision.Value), ("@e", (long)fence.Epoch), ("@k", kind),
            ("@n", (long)step.NodeId), ("@d", step.Detail), ("@i", fence.IdempotencyKey)).ConfigureAwait(false);
        await CommitAsync(transaction, attempt, cancellationToken).ConfigureAwait(false);
        return new FencedResult<T>(FencedStatus.Committed, revision.Value, step.Value);
    }

    private static StoredChange ReadChange(NpgsqlDataReader reader) =>
        new(reader.GetString(0), (ulong)reader.GetInt64(1), (ulong)reader.GetInt64(2), reader.GetString(3), (ulong)reader.GetInt64(4),
            reader.GetString(5), ReadStringOrNull(reader, 6), ReadStamp(reader, 7));
}
