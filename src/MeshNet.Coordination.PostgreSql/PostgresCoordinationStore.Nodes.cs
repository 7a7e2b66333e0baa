using System.Globalization;
using MeshNet.Coordination.Storage;
using Npgsql;

namespace MeshNet.Coordination.PostgreSql;

public sealed partial class PostgresCoordinationStore
{
    private const string NodeKeyConstraint = "nodes_node_key_key";
    private const string NodeNameConstraint = "nodes_tailnet_name_key";
    private const string NodeIPv4Constraint = "nodes_tailnet_ipv4_key";
    private const string NodeIPv6Constraint = "nodes_tailnet_ipv6_key";

    /// <inheritdoc />
    /// <remarks>
    /// Inserts of one tailnet are ordered by the fence, but a node key is unique across the
    /// deployment: an insert racing one of another tailnet for the same key (or any insert the
    /// checks did not see coming) fails on the unique index and is answered with the outcome
    /// that names the constraint, as the checks would have.
    /// </remarks>
    public Task<FencedResult<NodeInsertResult>> InsertNodeAsync(TailnetFence fence, StoredNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Tailnet != fence.Tailnet)
        {
            throw new ArgumentException("The node's tailnet must be the fence's.", nameof(node));
        }
        return FencedAsync(fence, ChangeKinds.NodeAdded, async (connection, transaction, revision) =>
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

    /// <inheritdoc />
    public Task<FencedResult<NodeKeyUpdateOutcome>> UpdateNodeKeyAsync(TailnetFence fence, ulong id, ReadOnlyMemory<byte> expectedOldKey,
        ReadOnlyMemory<byte> newKey, DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var newKeyBytes = newKey.ToArray();
        var oldKeyBytes = expectedOldKey.ToArray();
        return FencedAsync(fence, ChangeKinds.NodeKeyRotated, async (connection, transaction, revision) =>
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

    /// <inheritdoc />
    public Task<FencedResult<bool>> SetKeyExpiryAsync(TailnetFence fence, ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.NodeKeyExpiry, async (connection, transaction, revision) =>
        {
            bool updated = await ExecuteAsync(connection, transaction, "UPDATE nodes SET key_expiry = @v, revision = @r WHERE id = @id AND tailnet = @t;",
                cancellationToken, ("@v", Stamp(keyExpiry)), ("@r", (long)revision), ("@id", (long)id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(updated, updated, id);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> UpdateNodeAsync(TailnetFence fence, ulong id, string hostname, IReadOnlyList<string> tags,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        ArgumentNullException.ThrowIfNull(tags);
        var tagArray = tags.ToArray();
        return FencedAsync(fence, ChangeKinds.NodeUpdated, async (connection, transaction, revision) =>
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

    /// <inheritdoc />
    /// <remarks>One round trip: a batch of one <c>UPDATE</c> per state, applied in order (as the SQLite store applies them).</remarks>
    public Task<FencedResult<int>> UpdateLiveStateAsync(TailnetFence fence, IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(states);
        return FencedAsync(fence, ChangeKinds.LiveState, async (connection, transaction, revision) =>
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

    /// <inheritdoc />
    public Task<FencedResult<bool>> DeleteNodeAsync(TailnetFence fence, ulong id, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.NodeRemoved, async (connection, transaction, revision) =>
        {
            bool deleted = await ExecuteAsync(connection, transaction, "DELETE FROM nodes WHERE id = @id AND tailnet = @t;", cancellationToken,
                ("@id", (long)id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(deleted, deleted, id);
        }, cancellationToken);

    /// <summary>Counts one use of an auth key of the tailnet when it is usable at <paramref name="at"/>; false (nothing counted) otherwise.</summary>
    private static async Task<bool> CountAuthKeyUseAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string authKeyId, string tailnet,
        DateTimeOffset at, CancellationToken cancellationToken) =>
        await ExecuteAsync(connection, transaction,
            """
            UPDATE auth_keys SET uses = uses + 1
            WHERE id = @id AND tailnet = @t AND NOT revoked AND expires > @now AND (reusable OR uses = 0);
            """, cancellationToken, ("@id", authKeyId), ("@t", tailnet), ("@now", Stamp(at))).ConfigureAwait(false) == 1;
}
