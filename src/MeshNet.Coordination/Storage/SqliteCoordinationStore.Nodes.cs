using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

public sealed partial class SqliteCoordinationStore
{
    /// <inheritdoc />
    public Task<FencedResult<NodeInsertResult>> InsertNodeAsync(TailnetFence fence, StoredNode node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Tailnet != fence.Tailnet)
        {
            throw new ArgumentException("The node's tailnet must be the fence's.", nameof(node));
        }
        var ipv4 = node.IPv4.ToString();
        var ipv6 = node.IPv6.ToString();
        return FencedAsync(fence, ChangeKinds.NodeAdded, async (connection, transaction, revision) =>
        {
            if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE node_key = $k;", cancellationToken, ("$k", node.NodeKey)).ConfigureAwait(false))
            {
                return Refused(NodeInsertOutcome.NodeKeyTaken);
            }
            if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE tailnet = $t AND name = $n;", cancellationToken,
                ("$t", node.Tailnet), ("$n", node.Name)).ConfigureAwait(false))
            {
                return Refused(NodeInsertOutcome.NameTaken);
            }
            if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE tailnet = $t AND (ipv4 = $a OR ipv6 = $b);", cancellationToken,
                ("$t", node.Tailnet), ("$a", ipv4), ("$b", ipv6)).ConfigureAwait(false))
            {
                return Refused(NodeInsertOutcome.AddressTaken);
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
                    return Refused(NodeInsertOutcome.AuthKeyUnusable);
                }
            }
            var id = await ScalarAsync(connection, transaction,
                """
                INSERT INTO nodes (tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user,
                    online, endpoints, instance, revision, tags_revision)
                VALUES ($t, $k, $n, $h, $a, $b, $tags, $e, $x, $c, $ls, $ak, $user, $on, $ep, $in, $r, $r) RETURNING id;
                """, cancellationToken,
                ("$t", node.Tailnet), ("$k", node.NodeKey), ("$n", node.Name), ("$h", node.Hostname), ("$a", ipv4), ("$b", ipv6),
                ("$tags", string.Join(' ', node.Tags)), ("$e", node.Ephemeral), ("$x", node.KeyExpiry.ToUnixTimeMilliseconds()),
                ("$c", node.Created.ToUnixTimeMilliseconds()), ("$ls", node.LastSeen?.ToUnixTimeMilliseconds()), ("$ak", node.AuthKeyId), ("$user", node.User),
                ("$on", node.Online), ("$ep", string.Join(' ', node.Endpoints)), ("$in", node.Instance), ("$r", (long)revision)).ConfigureAwait(false);
            ulong assigned = (ulong)Convert.ToInt64(id, System.Globalization.CultureInfo.InvariantCulture);
            var stored = node with { Id = assigned, Revision = revision, TagsRevision = revision };
            return new WriteStep<NodeInsertResult>(true, new NodeInsertResult(NodeInsertOutcome.Inserted, stored), assigned, node.Name);
        }, cancellationToken, missingTailnet: new NodeInsertResult(NodeInsertOutcome.TailnetMissing, null));

        static WriteStep<NodeInsertResult> Refused(NodeInsertOutcome outcome) => new(false, new NodeInsertResult(outcome, null));
    }

    /// <inheritdoc />
    public Task<FencedResult<NodeKeyUpdateOutcome>> UpdateNodeKeyAsync(TailnetFence fence, ulong id, ReadOnlyMemory<byte> expectedOldKey,
        ReadOnlyMemory<byte> newKey, DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var newKeyBytes = newKey.ToArray();
        var oldKeyBytes = expectedOldKey.ToArray();
        return FencedAsync(fence, ChangeKinds.NodeKeyRotated, async (connection, transaction, revision) =>
        {
            if (await ExistsAsync(connection, transaction, "SELECT 1 FROM nodes WHERE node_key = $k;", cancellationToken, ("$k", newKeyBytes)).ConfigureAwait(false))
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.NodeKeyTaken);
            }
            int updated = await ExecuteAsync(connection, transaction,
                "UPDATE nodes SET node_key = $k, key_expiry = $x, revision = $r WHERE id = $id AND tailnet = $t AND node_key = $old;",
                cancellationToken, ("$k", newKeyBytes), ("$x", keyExpiry.ToUnixTimeMilliseconds()), ("$id", (long)id), ("$t", fence.Tailnet),
                ("$old", oldKeyBytes), ("$r", (long)revision)).ConfigureAwait(false);
            if (updated != 1)
            {
                return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.NodeMissing);
            }
            if (authKeyId is not null)
            {
                int counted = await ExecuteAsync(connection, transaction,
                    """
                    UPDATE auth_keys SET uses = uses + 1
                    WHERE id = $ak AND tailnet = $t AND revoked = 0 AND expires > $now AND (reusable = 1 OR uses = 0);
                    """, cancellationToken,
                    ("$ak", authKeyId), ("$t", fence.Tailnet), ("$now", now.ToUnixTimeMilliseconds())).ConfigureAwait(false);
                if (counted != 1)
                {
                    return new WriteStep<NodeKeyUpdateOutcome>(false, NodeKeyUpdateOutcome.AuthKeyUnusable); // rolled back
                }
            }
            return new WriteStep<NodeKeyUpdateOutcome>(true, NodeKeyUpdateOutcome.Updated, id, authKeyId ?? "");
        }, cancellationToken, missingTailnet: NodeKeyUpdateOutcome.NodeMissing);
    }

    /// <inheritdoc />
    public Task<FencedResult<bool>> SetKeyExpiryAsync(TailnetFence fence, ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.NodeKeyExpiry, async (connection, transaction, revision) =>
        {
            bool updated = await ExecuteAsync(connection, transaction, "UPDATE nodes SET key_expiry = $v, revision = $r WHERE id = $id AND tailnet = $t;",
                cancellationToken, ("$v", keyExpiry.ToUnixTimeMilliseconds()), ("$r", (long)revision), ("$id", (long)id), ("$t", fence.Tailnet))
                .ConfigureAwait(false) == 1;
            return new WriteStep<bool>(updated, updated, id);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> UpdateNodeAsync(TailnetFence fence, ulong id, string hostname, IReadOnlyList<string> tags,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(hostname);
        ArgumentNullException.ThrowIfNull(tags);
        var tagText = string.Join(' ', tags);
        return FencedAsync(fence, ChangeKinds.NodeUpdated, async (connection, transaction, revision) =>
        {
            bool updated = await ExecuteAsync(connection, transaction,
                """
                UPDATE nodes SET hostname = $h, tags_revision = CASE WHEN tags = $g THEN tags_revision ELSE $r END, tags = $g, revision = $r
                WHERE id = $id AND tailnet = $t;
                """, cancellationToken, ("$h", hostname), ("$g", tagText), ("$r", (long)revision), ("$id", (long)id), ("$t", fence.Tailnet))
                .ConfigureAwait(false) == 1;
            return new WriteStep<bool>(updated, updated, id);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<FencedResult<int>> UpdateLiveStateAsync(TailnetFence fence, IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(states);
        return FencedAsync(fence, ChangeKinds.LiveState, async (connection, transaction, revision) =>
        {
            int written = 0;
            ulong single = 0;
            foreach (var state in states)
            {
                int updated = await ExecuteAsync(connection, transaction,
                    """
                    UPDATE nodes SET online = $on, endpoints = $ep, instance = $in, last_seen = COALESCE($ls, last_seen), revision = $r
                    WHERE id = $id AND tailnet = $t;
                    """, cancellationToken, ("$on", state.Online), ("$ep", string.Join(' ', state.Endpoints)), ("$in", state.Instance),
                    ("$ls", state.LastSeen?.ToUnixTimeMilliseconds()), ("$r", (long)revision), ("$id", (long)state.NodeId), ("$t", fence.Tailnet))
                    .ConfigureAwait(false);
                if (updated == 1)
                {
                    written++;
                    single = state.NodeId;
                }
            }
            return new WriteStep<int>(written > 0, written, written == 1 ? single : 0,
                written.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<FencedResult<bool>> DeleteNodeAsync(TailnetFence fence, ulong id, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.NodeRemoved, async (connection, transaction, revision) =>
        {
            bool deleted = await ExecuteAsync(connection, transaction, "DELETE FROM nodes WHERE id = $id AND tailnet = $t;", cancellationToken,
                ("$id", (long)id), ("$t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(deleted, deleted, id);
        }, cancellationToken);
}
