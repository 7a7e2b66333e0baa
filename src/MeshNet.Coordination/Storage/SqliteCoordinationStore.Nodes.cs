using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

public sealed partial class SqliteCoordinationStore
{
    /// <inheritdoc />
    public async Task<NodeInsertResult> InsertNodeAsync(StoredNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        var ipv4 = node.IPv4.ToString();
        var ipv6 = node.IPv6.ToString();
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        // BEGIN IMMEDIATE: the checks below and the insert see no concurrent writer.
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (!await ExistsAsync(connection, transaction, "SELECT 1 FROM tailnets WHERE name = $t;", cancellationToken, ("$t", node.Tailnet)).ConfigureAwait(false))
        {
            return new(NodeInsertOutcome.TailnetMissing, null);
        }
        if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE node_key = $k;", cancellationToken, ("$k", node.NodeKey)).ConfigureAwait(false))
        {
            return new(NodeInsertOutcome.NodeKeyTaken, null);
        }
        if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE tailnet = $t AND name = $n;", cancellationToken,
            ("$t", node.Tailnet), ("$n", node.Name)).ConfigureAwait(false))
        {
            return new(NodeInsertOutcome.NameTaken, null);
        }
        if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE tailnet = $t AND (ipv4 = $a OR ipv6 = $b);", cancellationToken,
            ("$t", node.Tailnet), ("$a", ipv4), ("$b", ipv6)).ConfigureAwait(false))
        {
            return new(NodeInsertOutcome.AddressTaken, null);
        }
        if (node.AuthKeyId is not null)
        {
            int counted = await ExecuteAsync(connection, transaction,
                """
                UPDATE auth_keys SET uses = uses + 1
                WHERE id = $id AND tailnet = $t AND revoked = 0 AND expires > $now AND (reusable = 1 OR uses = 0);
                """, cancellationToken,
                ("$id", node.AuthKeyId), ("$t", node.Tailnet), ("$now", node.Created.ToUnixTimeMilliseconds())).ConfigureAwait(false);
            if (counted != 1)
            {
                return new(NodeInsertOutcome.AuthKeyUnusable, null);
            }
        }
        var id = await ScalarAsync(connection, transaction,
            $"""
            INSERT INTO nodes (tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user)
            VALUES ($t, $k, $n, $h, $a, $b, $tags, $e, $x, $c, $ls, $ak, $user) RETURNING id;
            """, cancellationToken,
            ("$t", node.Tailnet), ("$k", node.NodeKey), ("$n", node.Name), ("$h", node.Hostname), ("$a", ipv4), ("$b", ipv6),
            ("$tags", string.Join(' ', node.Tags)), ("$e", node.Ephemeral), ("$x", node.KeyExpiry.ToUnixTimeMilliseconds()),
            ("$c", node.Created.ToUnixTimeMilliseconds()), ("$ls", node.LastSeen?.ToUnixTimeMilliseconds()), ("$ak", node.AuthKeyId), ("$user", node.User)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new(NodeInsertOutcome.Inserted, node with { Id = (ulong)Convert.ToInt64(id, System.Globalization.CultureInfo.InvariantCulture) });
    }

    /// <inheritdoc />
    public async Task<NodeKeyUpdateOutcome> UpdateNodeKeyAsync(ulong id, ReadOnlyMemory<byte> expectedOldKey, ReadOnlyMemory<byte> newKey,
        DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var newKeyBytes = newKey.ToArray();
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE node_key = $k;", cancellationToken, ("$k", newKeyBytes)).ConfigureAwait(false))
        {
            return NodeKeyUpdateOutcome.NodeKeyTaken;
        }
        int updated = await ExecuteAsync(connection, transaction, "UPDATE nodes SET node_key = $k, key_expiry = $x WHERE id = $id AND node_key = $old;",
            cancellationToken, ("$k", newKeyBytes), ("$x", keyExpiry.ToUnixTimeMilliseconds()), ("$id", (long)id), ("$old", expectedOldKey.ToArray())).ConfigureAwait(false);
        if (updated != 1)
        {
            return NodeKeyUpdateOutcome.NodeMissing;
        }
        if (authKeyId is not null)
        {
            int counted = await ExecuteAsync(connection, transaction,
                """
                UPDATE auth_keys SET uses = uses + 1
                WHERE id = $ak AND tailnet = (SELECT tailnet FROM nodes WHERE id = $id)
                  AND revoked = 0 AND expires > $now AND (reusable = 1 OR uses = 0);
                """, cancellationToken,
                ("$ak", authKeyId), ("$id", (long)id), ("$now", now.ToUnixTimeMilliseconds())).ConfigureAwait(false);
            if (counted != 1)
            {
                return NodeKeyUpdateOutcome.AuthKeyUnusable; // disposing the transaction rolls the key change back
            }
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return NodeKeyUpdateOutcome.Updated;
    }

    /// <inheritdoc />
    public Task<bool> SetKeyExpiryAsync(ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken) =>
        UpdateOneAsync("UPDATE nodes SET key_expiry = $v WHERE id = $id;", id, keyExpiry.ToUnixTimeMilliseconds(), cancellationToken);

    /// <inheritdoc />
    public Task<bool> SetHostnameAsync(ulong id, string hostname, CancellationToken cancellationToken) =>
        UpdateOneAsync("UPDATE nodes SET hostname = $v WHERE id = $id;", id, hostname, cancellationToken);

    /// <inheritdoc />
    public Task<bool> SetTagsAsync(ulong id, IReadOnlyList<string> tags, CancellationToken cancellationToken) =>
        UpdateOneAsync("UPDATE nodes SET tags = $v WHERE id = $id;", id, string.Join(' ', tags), cancellationToken);

    /// <inheritdoc />
    public Task<bool> SetLastSeenAsync(ulong id, DateTimeOffset lastSeen, CancellationToken cancellationToken) =>
        UpdateOneAsync("UPDATE nodes SET last_seen = $v WHERE id = $id;", id, lastSeen.ToUnixTimeMilliseconds(), cancellationToken);

    /// <inheritdoc />
    public async Task<bool> DeleteNodeAsync(ulong id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, "DELETE FROM nodes WHERE id = $id;", cancellationToken, ("$id", (long)id)).ConfigureAwait(false) == 1;
    }

    private async Task<bool> UpdateOneAsync(string sql, ulong id, object value, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, sql, cancellationToken, ("$id", (long)id), ("$v", value)).ConfigureAwait(false) == 1;
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
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<bool> ExistsAsync(SqliteConnection connection, SqliteTransaction transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) =>
        await ScalarAsync(connection, transaction, sql, cancellationToken, parameters).ConfigureAwait(false) is not null;

    private async Task<IReadOnlyList<T>> QueryAsync<T>(string sql, Func<SqliteDataReader, T> read, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, null, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(read(reader));
        }
        return list;
    }
}
