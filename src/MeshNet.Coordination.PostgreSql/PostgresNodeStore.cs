using System.Globalization;
using System.Net;
using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The nodes of every tailnet on PostgreSQL: lookups, and the fenced writes that register a node
/// (counting its auth key's use in the same transaction), rotate or expire its key, update it,
/// record its live state and delete it. Node keys are unique across the deployment; names and
/// addresses per tailnet, enforced by the checks and, for racing inserts, by the unique indexes.
/// </summary>
/// <remarks>
/// Thread-safe and stateless but for the shared <see cref="PostgresConnections"/> and
/// <see cref="PostgresFencing"/>, which it does not own; after the connections are disposed every
/// call throws <see cref="ObjectDisposedException"/>.
/// </remarks>
/// <param name="connections">The store's connections (not owned).</param>
/// <param name="fencing">The fenced writes (not owned).</param>
internal sealed class PostgresNodeStore(PostgresConnections connections, PostgresFencing fencing)
{
    /// <summary>The columns <see cref="ReadNode"/> reads, in its order.</summary>
    public const string NodeColumns =
        "id, tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user_name, " +
        "online, endpoints, instance, revision, tags_revision";

    private const string NodeKeyConstraint = "nodes_node_key_key";
    private const string NodeNameConstraint = "nodes_tailnet_name_key";
    private const string NodeIPv4Constraint = "nodes_tailnet_ipv4_key";
    private const string NodeIPv6Constraint = "nodes_tailnet_ipv6_key";

    /// <inheritdoc cref="PostgresCoordinationStore.GetNodeByKeyAsync"/>
    public async Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE node_key = @k;", ReadNode, cancellationToken,
            ("@k", nodeKey.ToArray())).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.GetNodeAsync"/>
    public async Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE id = @id;", ReadNode, cancellationToken, ("@id", (long)id))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListNodesAsync"/>
    public Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE tailnet = @t ORDER BY id;", ReadNode, cancellationToken, ("@t", tailnet));

    /// <inheritdoc cref="PostgresCoordinationStore.CountNodesAsync"/>
    public async Task<long> CountNodesAsync(CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync("SELECT COUNT(*) FROM nodes;", reader => reader.GetInt64(0), cancellationToken).ConfigureAwait(false);
        return list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListNamesWithPrefixAsync"/>
    public Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken) =>
        // Names are [a-z0-9-], all below '~' in the "C" collation of the column: a range scan of the (tailnet, name) index.
        connections.QueryAsync("SELECT name FROM nodes WHERE tailnet = @t AND name >= @p AND name < @p || '~';", reader => reader.GetString(0),
            cancellationToken, ("@t", tailnet), ("@p", prefix));

    /// <inheritdoc cref="PostgresCoordinationStore.ListEphemeralNodesIdleSinceAsync"/>
    public Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        connections.QueryAsync(
            $"SELECT {NodeColumns} FROM nodes WHERE ephemeral AND NOT online AND COALESCE(last_seen, created) < @c ORDER BY COALESCE(last_seen, created) LIMIT @l;",
            ReadNode, cancellationToken, ("@c", Stamp(cutoff)), ("@l", limit));

    /// <inheritdoc cref="PostgresCoordinationStore.ListNodesWithKeyExpiryAsync"/>
    public Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit,
        CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE key_expiry > @a AND key_expiry <= @u ORDER BY key_expiry LIMIT @l;",
            ReadNode, cancellationToken, ("@a", Stamp(after)), ("@u", Stamp(upTo)), ("@l", limit));

    /// <inheritdoc cref="PostgresCoordinationStore.InsertNodeAsync"/>
    public Task<FencedResult<NodeInsertResult>> InsertNodeAsync(TailnetFence fence, StoredNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Tailnet != fence.Tailnet)
        {
            throw new ArgumentException("The node's tailnet must be the fence's.", nameof(node));
        }
        return fencing.WriteAsync(fence, ChangeKinds.NodeAdded, async (connection, transaction, revision) =>
        {
            var taken = await QueryAsync(connection, transaction,
                """
                SELECT EXISTS (SELECT 1 FROM nodes WHERE node_key = @k),
                    EXISTS (SELECT 1 FROM nodes WHERE tailnet = @t AND name = @n),
                    EXISTS (SELECT 1 FROM nodes WHERE tailnet = @t AND (ipv4 = @a OR ipv6 = @b));
                """, reader => (Key: reader.GetBoolean(0), Name: reader.GetBoolean(1), Address: reader.GetBoolean(2)), cancellationToken,
                ("@k", node.NodeKey), ("@t", node.Tailnet), ("@n", node.Name), ("@a", node.IPv4), ("@b", node.IPv6)).ConfigureAwait(false);
            if (taken[0].Key)
            {
                return Refused(NodeInsertOutcome.NodeKeyTaken);
            }
            if (taken[0].Name)
            {
                return Refused(NodeInsertOutcome.NameTaken);
            }
            if (taken[0].Address)
            {
                return Refused(NodeInsertOutcome.AddressTaken);
            }
            if (node.AuthKeyId is not null && !await CountAuthKeyUseAsync(connection, transaction, node.AuthKeyId, node.Tailnet, node.Created,
                cancellationToken).ConfigureAwait(false))
            {
                return Refused(NodeInsertOutcome.AuthKeyUnusable);
            }
            object? id;
            try
            {
                id = await ScalarAsync(connection, transaction,
                    """
                    INSERT INTO nodes (tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id,
                        user_name, online, endpoints, instance, revision, tags_revision)
                    VALUES (@t, @k, @n, @h, @a, @b, @tags, @e, @x, @c, @ls::timestamptz, @ak::text, @user, @on, @ep, @in, @r, @r) RETURNING id;
                    """, cancellationToken,
                    ("@t", node.Tailnet), ("@k", node.NodeKey), ("@n", node.Name), ("@h", node.Hostname), ("@a", node.IPv4), ("@b", node.IPv6),
                    ("@tags", node.Tags.ToArray()), ("@e", node.Ephemeral), ("@x", Stamp(node.KeyExpiry)), ("@c", Stamp(node.Created)),
                    ("@ls", node.LastSeen is { } seen ? Stamp(seen) : null), ("@ak", node.AuthKeyId), ("@user", node.User), ("@on", node.Online),
                    ("@ep", node.Endpoints.ToArray()), ("@in", node.Instance), ("@r", (long)revision)).ConfigureAwait(false);
            }
            catch (PostgresException exception) when (InsertConflict(exception) is { } outcome)
            {
                return Refused(outcome); // the transaction is aborted; disposing it rolls back the counted use
            }
            ulong assigned = (ulong)(long)id!;
            var stored = node with
            {
                Id = assigned,
                KeyExpiry = Stamp(node.KeyExpiry),
                Created = Stamp(node.Created),
                LastSeen = node.LastSeen is { } last ? Stamp(last) : null,
                Revision = revision,
                TagsRevision = revision,
            };
            return new WriteStep<NodeInsertResult>(true, new NodeInsertResult(NodeInsertOutcome.Inserted, stored), assigned, node.Name);
        }, cancellationToken, missingTailnet: new NodeInsertResult(NodeInsertOutcome.TailnetMissing, null));

        static WriteStep<NodeInsertResult> Refused(NodeInsertOutcome outcome) => new(false, new NodeInsertResult(outcome, null));

        static NodeInsertOutcome? InsertConflict(PostgresException exception) =>
            IsUniqueViolation(exception, NodeKeyConstraint) ? NodeInsertOutcome.NodeKeyTaken
            : IsUniqueViolation(exception, NodeNameConstraint) ? NodeInsertOutcome.NameTaken
            : IsUniqueViolation(exception, NodeIPv4Constraint) || IsUniqueViolation(exception, NodeIPv6Constraint) ? NodeInsertOutcome.AddressTaken
            : null;
    }

    /// <inheritdoc cref="PostgresCoordinationStore.UpdateNodeKeyAsync"/>
    public Task<FencedResult<NodeKeyUpdateOutcome>> UpdateNodeKeyAsync(TailnetFence fence, ulong id, ReadOnlyMemory<byte> expectedOldKey,
        ReadOnlyMemory<byte> newKey, DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var newKeyBytes = newKey.ToArray();
        var oldKeyBytes = expectedOldKey.ToArray();
        return fencing.WriteAsync(fence, ChangeKinds.NodeKeyRotated, async (connection, transaction, revision) =>
        {
            if (await ScalarAsync(connection, transaction, "SELECT 1 FROM nodes WHERE node_key = @k;", cancellationToken, ("@k", newKeyBytes))
                .ConfigureAwait(false) is not null)
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.NodeKeyTaken);
            }
            int updated;
            try
            {
                updated = await ExecuteAsync(connection, transaction,
                    "UPDATE nodes SET node_key = @k, key_expiry = @x, revision = @r WHERE id = @id AND tailnet = @t AND node_key = @old;",
                    cancellationToken, ("@k", newKeyBytes), ("@x", Stamp(keyExpiry)), ("@id", (long)id), ("@t", fence.Tailnet), ("@old", oldKeyBytes),
                    ("@r", (long)revision)).ConfigureAwait(false);
            }
            catch (PostgresException exception) when (IsUniqueViolation(exception, NodeKeyConstraint))
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.NodeKeyTaken); // a concurrent insert took the key
            }
            if (updated != 1)
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.NodeMissing);
            }
            if (authKeyId is not null && !await CountAuthKeyUseAsync(connection, transaction, authKeyId, fence.Tailnet, now, cancellationToken)
                .ConfigureAwait(false))
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.AuthKeyUnusable); // rolled back
            }
            return new WriteStep<NodeKeyUpdateOutcome>(true, NodeKeyUpdateOutcome.Updated, id, authKeyId ?? "");
        }, cancellationToken, missingTailnet: NodeKeyUpdateOutcome.NodeMissing);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.SetKeyExpiryAsync"/>
    public Task<FencedResult<bool>> SetKeyExpiryAsync(TailnetFence fence, ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken) =>
        fencing.WriteAsync(fence, ChangeKinds.NodeKeyExpiry, async (connection, transaction, revision) =>
        {
            bool updated = await ExecuteAsync(connection, transaction, "UPDATE nodes SET key_expiry = @v, revision = @r WHERE id = @id AND tailnet = @t;",
                cancellationToken, ("@v", Stamp(keyExpiry)), ("@r", (long)revision), ("@id", (long)id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(updated, updated, id);
        }, cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.UpdateNodeAsync"/>
    public Task<FencedResult<bool>> UpdateNodeAsync(TailnetFence fence, ulong id, string hostname, IReadOnlyList<string> tags,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        ArgumentNullException.ThrowIfNull(tags);
        var tagArray = tags.ToArray();
        return fencing.WriteAsync(fence, ChangeKinds.NodeUpdated, async (connection, transaction, revision) =>
        {
            bool updated = await ExecuteAsync(connection, transaction,
                """
                UPDATE nodes SET hostname = @h, tags_revision = CASE WHEN tags = @g THEN tags_revision ELSE @r END, tags = @g, revision = @r
                WHERE id = @id AND tailnet = @t;
                """, cancellationToken, ("@h", hostname), ("@g", tagArray), ("@r", (long)revision), ("@id", (long)id), ("@t", fence.Tailnet))
                .ConfigureAwait(false) == 1;
            return new WriteStep<bool>(updated, updated, id);
        }, cancellationToken);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.UpdateLiveStateAsync"/>
    public Task<FencedResult<int>> UpdateLiveStateAsync(TailnetFence fence, IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(states);
        return fencing.WriteAsync(fence, ChangeKinds.LiveState, async (connection, transaction, revision) =>
        {
            if (states.Count == 0)
            {
                return new WriteStep<int>(false, 0, 0, "0");
            }
            await using var batch = new NpgsqlBatch(connection, transaction);
            foreach (var state in states)
            {
                var command = new NpgsqlBatchCommand(
                    """
                    UPDATE nodes SET online = @on, endpoints = @ep, instance = @in, last_seen = COALESCE(@ls::timestamptz, last_seen), revision = @r
                    WHERE id = @id AND tailnet = @t;
                    """);
                command.Parameters.Add(new NpgsqlParameter("@on", state.Online));
                command.Parameters.Add(new NpgsqlParameter("@ep", state.Endpoints.ToArray()));
                command.Parameters.Add(new NpgsqlParameter("@in", state.Instance));
                command.Parameters.Add(new NpgsqlParameter("@ls", state.LastSeen is { } seen ? Stamp(seen) : DBNull.Value));
                command.Parameters.Add(new NpgsqlParameter("@r", (long)revision));
                command.Parameters.Add(new NpgsqlParameter("@id", (long)state.NodeId));
                command.Parameters.Add(new NpgsqlParameter("@t", fence.Tailnet));
                batch.BatchCommands.Add(command);
            }
            await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            int written = 0;
            ulong single = 0;
            for (int i = 0; i < states.Count; i++)
            {
                if (batch.BatchCommands[i].RecordsAffected == 1)
                {
                    written++;
                    single = states[i].NodeId;
                }
            }
            return new WriteStep<int>(written > 0, written, written == 1 ? single : 0, written.ToString(CultureInfo.InvariantCulture));
        }, cancellationToken);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.DeleteNodeAsync"/>
    public Task<FencedResult<bool>> DeleteNodeAsync(TailnetFence fence, ulong id, CancellationToken cancellationToken) =>
        fencing.WriteAsync(fence, ChangeKinds.NodeRemoved, async (connection, transaction, revision) =>
        {
            bool deleted = await ExecuteAsync(connection, transaction, "DELETE FROM nodes WHERE id = @id AND tailnet = @t;", cancellationToken,
                ("@id", (long)id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(deleted, deleted, id);
        }, cancellationToken);

    /// <summary>A node row of <see cref="NodeColumns"/>.</summary>
    public static StoredNode ReadNode(NpgsqlDataReader reader) =>
        new((ulong)reader.GetInt64(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2), reader.GetString(3), reader.GetString(4),
            reader.GetFieldValue<IPAddress>(5), reader.GetFieldValue<IPAddress>(6), reader.GetFieldValue<string[]>(7), reader.GetBoolean(8),
            ReadStamp(reader, 9), ReadStamp(reader, 10), ReadStampOrNull(reader, 11), ReadStringOrNull(reader, 12), reader.GetString(13))
        {
            Online = reader.GetBoolean(14),
            Endpoints = reader.GetFieldValue<string[]>(15),
            Instance = reader.GetString(16),
            Revision = (ulong)reader.GetInt64(17),
            TagsRevision = (ulong)reader.GetInt64(18),
        };

    /// <summary>Counts one use of an auth key of the tailnet when it is usable at <paramref name="at"/>; false (nothing counted) otherwise.</summary>
    private static async Task<bool> CountAuthKeyUseAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string authKeyId, string tailnet,
        DateTimeOffset at, CancellationToken cancellationToken) =>
        await ExecuteAsync(connection, transaction,
            """
            UPDATE auth_keys SET uses = uses + 1
            WHERE id = @id AND tailnet = @t AND NOT revoked AND expires > @now AND (reusable OR uses = 0);
            """, cancellationToken, ("@id", authKeyId), ("@t", tailnet), ("@now", Stamp(at))).ConfigureAwait(false) == 1;
}
