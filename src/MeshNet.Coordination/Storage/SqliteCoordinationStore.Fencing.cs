using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

public sealed partial class SqliteCoordinationStore
{
    /// <inheritdoc />
    public Task<IReadOnlyList<StoredChange>> ListChangesAsync(string tailnet, ulong afterRevision, int limit, CancellationToken cancellationToken) =>
        QueryAsync(
            """
            SELECT tailnet, revision, epoch, kind, node_id, detail, idempotency_key, committed_at FROM tailnet_changes
            WHERE tailnet = $t AND revision > $a ORDER BY revision LIMIT $l;
            """,
            ReadChange, cancellationToken, ("$t", tailnet), ("$a", (long)afterRevision), ("$l", limit));

    private static StoredChange ReadChange(SqliteDataReader reader) =>
        new(reader.GetString(0), (ulong)reader.GetInt64(1), (ulong)reader.GetInt64(2), reader.GetString(3), (ulong)reader.GetInt64(4),
            reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6), FromUnix(reader.GetInt64(7)));

    /// <inheritdoc />
    public async Task<StoredChange?> FindChangeAsync(string tailnet, string idempotencyKey, CancellationToken cancellationToken)
    {
        var list = await QueryAsync(
            """
            SELECT tailnet, revision, epoch, kind, node_id, detail, idempotency_key, committed_at FROM tailnet_changes
            WHERE tailnet = $t AND idempotency_key = $k;
            """, ReadChange, cancellationToken, ("$t", tailnet), ("$k", idempotencyKey)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public async Task<int> PruneChangesAsync(TimeSpan olderThan, int keep, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        long cutoff = NowMs() - (long)olderThan.TotalMilliseconds;
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, transaction,
            """
            UPDATE tailnet_leases SET log_floor = MAX(log_floor, COALESCE((SELECT MAX(c.revision) FROM tailnet_changes c
                WHERE c.tailnet = tailnet_leases.tailnet AND c.committed_at < $cut AND c.revision <= tailnet_leases.revision - $keep), 0));
            """, cancellationToken, ("$cut", cutoff), ("$keep", keep)).ConfigureAwait(false);
        int deleted = await ExecuteAsync(connection, transaction,
            "DELETE FROM tailnet_changes WHERE revision <= (SELECT l.log_floor FROM tailnet_leases l WHERE l.tailnet = tailnet_changes.tailnet);",
            cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return deleted;
    }

    /// <summary>What the body of a fenced write did.</summary>
    /// <param name="Apply">False: nothing applies (the transaction is rolled back, no revision used).</param>
    /// <param name="Value">The write's result.</param>
    /// <param name="NodeId">The node the change-log entry names (0: none).</param>
    /// <param name="Detail">The change-log entry's detail.</param>
    private readonly record struct WriteStep<T>(bool Apply, T Value, ulong NodeId = 0, string Detail = "");

    /// <summary>
    /// One fenced write: in a <c>BEGIN IMMEDIATE</c> transaction, advances the tailnet's revision
    /// under the fence's epoch (refused: <see cref="FencedStatus.Fenced"/>), returns the earlier
    /// result of a write with the same idempotency key, runs <paramref name="body"/> with the new
    /// revision, appends the change-log entry and commits.
    /// </summary>
    private async Task<FencedResult<T>> FencedAsync<T>(TailnetFence fence, string kind,
        Func<SqliteConnection, SqliteTransaction, ulong, Task<WriteStep<T>>> body, CancellationToken cancellationToken, T missingTailnet = default!)
    {
        ValidateFence(fence);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var revision = await AdvanceAsync(connection, transaction, fence, cancellationToken).ConfigureAwait(false);
        if (revision is null)
        {
            bool exists = await ExistsAsync(connection, transaction, "SELECT 1 FROM tailnets WHERE name = $t;", cancellationToken, ("$t", fence.Tailnet))
                .ConfigureAwait(false);
            return exists ? FencedResult<T>.Fenced(missingTailnet) : FencedResult<T>.NotApplied(missingTailnet);
        }
        if (fence.IdempotencyKey is { } key)
        {
            var earlier = await QueryAsync(connection, transaction,
                "SELECT revision, detail FROM tailnet_changes WHERE tailnet = $t AND idempotency_key = $k;",
                reader => ((ulong)reader.GetInt64(0), reader.GetString(1)), cancellationToken, ("$t", fence.Tailnet), ("$k", key)).ConfigureAwait(false);
            if (earlier.Count > 0)
            {
                return new FencedResult<T>(FencedStatus.Duplicate, earlier[0].Item1, default!, earlier[0].Item2);
            }
        }
        var step = await body(connection, transaction, revision.Value).ConfigureAwait(false);
        if (!step.Apply)
        {
            return FencedResult<T>.NotApplied(step.Value); // disposing the transaction rolls it back
        }
        await ExecuteAsync(connection, transaction,
            """
            INSERT INTO tailnet_changes (tailnet, revision, epoch, kind, node_id, detail, idempotency_key, committed_at)
            VALUES ($t, $r, $e, $k, $n, $d, $i, $c);
            """, cancellationToken, ("$t", fence.Tailnet), ("$r", (long)revision.Value), ("$e", (long)fence.Epoch), ("$k", kind),
            ("$n", (long)step.NodeId), ("$d", step.Detail), ("$i", fence.IdempotencyKey), ("$c", NowMs())).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new FencedResult<T>(FencedStatus.Committed, revision.Value, step.Value);
    }

    /// <summary>The fence and the sequence in one row operation: the next revision, or null when the lease has another epoch or expired.</summary>
    private async Task<ulong?> AdvanceAsync(SqliteConnection connection, SqliteTransaction transaction, TailnetFence fence, CancellationToken cancellationToken)
    {
        var revision = await ScalarAsync(connection, transaction,
            "UPDATE tailnet_leases SET revision = revision + 1 WHERE tailnet = $t AND epoch = $e AND expires_at > $now RETURNING revision;",
            cancellationToken, ("$t", fence.Tailnet), ("$e", (long)fence.Epoch), ("$now", NowMs())).ConfigureAwait(false);
        return revision is null ? null : (ulong)Convert.ToInt64(revision, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void ValidateFence(TailnetFence fence)
    {
        ArgumentException.ThrowIfNullOrEmpty(fence.Tailnet);
        if (fence.IdempotencyKey is { Length: 0 or > TailnetFence.MaxIdempotencyKeyLength })
        {
            throw new ArgumentException($"An idempotency key has 1 to {TailnetFence.MaxIdempotencyKeyLength} characters.", nameof(fence));
        }
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql, (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return command;
    }

    private static async Task<int> ExecuteAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is DBNull ? null : value;
    }

    private static async Task<bool> ExistsAsync(SqliteConnection connection, SqliteTransaction transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) =>
        await ScalarAsync(connection, transaction, sql, cancellationToken, parameters).ConfigureAwait(false) is not null;

    private async Task<IReadOnlyList<T>> QueryAsync<T>(string sql, Func<SqliteDataReader, T> read, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await QueryAsync(connection, null, sql, read, cancellationToken, parameters).ConfigureAwait(false);
    }

    private static async Task<IReadOnlyList<T>> QueryAsync<T>(SqliteConnection connection, SqliteTransaction? transaction, string sql,
        Func<SqliteDataReader, T> read, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(read(reader));
        }
        return list;
    }
}
