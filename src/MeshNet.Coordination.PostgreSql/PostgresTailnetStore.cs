using System.Data;
using System.Globalization;
using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The tailnets on PostgreSQL and what belongs to each as a whole: its row (created with its
/// unowned lease row, deleted under the fence with everything it holds), its auth keys, its
/// policy, and the consistent snapshot a bus loads it from.
/// </summary>
/// <remarks>
/// Thread-safe and stateless but for the shared <see cref="PostgresConnections"/> and
/// <see cref="PostgresFencing"/>, which it does not own; after the connections are disposed every
/// call throws <see cref="ObjectDisposedException"/>.
/// </remarks>
/// <param name="connections">The store's connections (not owned).</param>
/// <param name="fencing">The fenced writes (not owned).</param>
internal sealed class PostgresTailnetStore(PostgresConnections connections, PostgresFencing fencing)
{
    private const string AuthKeyColumns = "id, tailnet, secret_hash, reusable, ephemeral, tags, created, expires, uses, revoked, description, user_name";
    private const string TailnetColumns = "name, domain, created, node_key_lifetime_ms";

    /// <inheritdoc cref="PostgresCoordinationStore.TryCreateTailnetAsync"/>
    public Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tailnet);
        return connections.RunAsync(Retry.Once, async (connection, attempt) =>
        {
            await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
            if (await ExecuteAsync(connection, transaction,
                $"INSERT INTO tailnets ({TailnetColumns}) VALUES (@n, @d, @c, @l) ON CONFLICT (name) DO NOTHING;", cancellationToken,
                ("@n", tailnet.Name), ("@d", tailnet.Domain), ("@c", Stamp(tailnet.Created)), ("@l", (long)tailnet.NodeKeyLifetime.TotalMilliseconds))
                .ConfigureAwait(false) != 1)
            {
                return false;
            }
            await ExecuteAsync(connection, transaction, "INSERT INTO tailnet_leases (tailnet) VALUES (@n);", cancellationToken, ("@n", tailnet.Name))
                .ConfigureAwait(false);
            await CommitAsync(transaction, attempt, cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.GetTailnetAsync"/>
    public async Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync($"SELECT {TailnetColumns} FROM tailnets WHERE name = @n;", ReadTailnet, cancellationToken, ("@n", name))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListTailnetsAsync"/>
    public Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {TailnetColumns} FROM tailnets ORDER BY name;", ReadTailnet, cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.DeleteTailnetAsync"/>
    public Task<FencedResult<bool>> DeleteTailnetAsync(TailnetFence fence, CancellationToken cancellationToken)
    {
        PostgresFencing.Validate(fence);
        return connections.RunAsync(Retry.Once, async (connection, attempt) =>
        {
            await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
            var revision = await PostgresFencing.AdvanceAsync(connection, transaction, fence, cancellationToken).ConfigureAwait(false);
            if (revision is null)
            {
                return FencedResult<bool>.Fenced(false);
            }
            int deleted = await ExecuteAsync(connection, transaction, "DELETE FROM tailnets WHERE name = @n;", cancellationToken, ("@n", fence.Tailnet))
                .ConfigureAwait(false);
            await CommitAsync(transaction, attempt, cancellationToken).ConfigureAwait(false);
            return new FencedResult<bool>(FencedStatus.Committed, revision.Value, deleted == 1);
        }, cancellationToken);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.LoadTailnetAsync"/>
    public Task<StoredTailnetState?> LoadTailnetAsync(string tailnet, CancellationToken cancellationToken) =>
        connections.RunAsync(Retry.Once, async (connection, _) =>
        {
            // One snapshot: every query of a REPEATABLE READ transaction sees the same committed state.
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, transaction, "SET TRANSACTION READ ONLY;", cancellationToken).ConfigureAwait(false);
            var tailnets = await QueryAsync(connection, transaction, $"SELECT {TailnetColumns} FROM tailnets WHERE name = @n;", ReadTailnet,
                cancellationToken, ("@n", tailnet)).ConfigureAwait(false);
            if (tailnets.Count == 0)
            {
                return null;
            }
            var head = await QueryAsync(connection, transaction, "SELECT revision, log_floor FROM tailnet_leases WHERE tailnet = @n;",
                reader => ((ulong)reader.GetInt64(0), (ulong)reader.GetInt64(1)), cancellationToken, ("@n", tailnet)).ConfigureAwait(false);
            var (revision, floor) = head.Count == 0 ? (0UL, 0UL) : head[0];
            var nodes = await QueryAsync(connection, transaction, $"SELECT {PostgresNodeStore.NodeColumns} FROM nodes WHERE tailnet = @t ORDER BY id;",
                PostgresNodeStore.ReadNode, cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
            var policies = await QueryAsync(connection, transaction, "SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = @t;",
                ReadPolicy, cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
            var removals = await QueryAsync(connection, transaction,
                "SELECT node_id, revision FROM tailnet_changes WHERE tailnet = @t AND kind = @k AND revision > @f ORDER BY revision;",
                reader => ((ulong)reader.GetInt64(0), (ulong)reader.GetInt64(1)), cancellationToken,
                ("@t", tailnet), ("@k", ChangeKinds.NodeRemoved), ("@f", (long)floor)).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return (StoredTailnetState?)new StoredTailnetState(tailnets[0], nodes, policies.Count == 0 ? null : policies[0], removals, revision, floor);
        }, cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.TryCreateAuthKeyAsync"/>
    public Task<FencedResult<bool>> TryCreateAuthKeyAsync(TailnetFence fence, StoredAuthKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Tailnet != fence.Tailnet)
        {
            throw new ArgumentException("The auth key's tailnet must be the fence's.", nameof(key));
        }
        return fencing.WriteAsync(fence, ChangeKinds.AuthKeyCreated, async (connection, transaction, revision) =>
        {
            bool created = await ExecuteAsync(connection, transaction,
                $"""
                INSERT INTO auth_keys ({AuthKeyColumns})
                SELECT @id, @t, @h, @r, @e, @tags, @c, @x, @u, @rv, @d, @user WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = @t)
                ON CONFLICT (id) DO NOTHING;
                """, cancellationToken,
                ("@id", key.Id), ("@t", key.Tailnet), ("@h", key.SecretHash), ("@r", key.Reusable), ("@e", key.Ephemeral),
                ("@tags", key.Tags.ToArray()), ("@c", Stamp(key.Created)), ("@x", Stamp(key.Expires)), ("@u", key.Uses), ("@rv", key.Revoked),
                ("@d", key.Description), ("@user", key.User)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(created, created, 0, key.Id);
        }, cancellationToken);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.GetAuthKeyAsync"/>
    public async Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE id = @id;", ReadAuthKey, cancellationToken, ("@id", id))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListAuthKeysAsync"/>
    public Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE tailnet = @t ORDER BY created, id;", ReadAuthKey, cancellationToken,
            ("@t", tailnet));

    /// <inheritdoc cref="PostgresCoordinationStore.RevokeAuthKeyAsync"/>
    public Task<FencedResult<bool>> RevokeAuthKeyAsync(TailnetFence fence, string id, CancellationToken cancellationToken) =>
        fencing.WriteAsync(fence, ChangeKinds.AuthKeyRevoked, async (connection, transaction, revision) =>
        {
            bool revoked = await ExecuteAsync(connection, transaction, "UPDATE auth_keys SET revoked = true WHERE id = @id AND tailnet = @t;",
                cancellationToken, ("@id", id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(revoked, revoked, 0, id);
        }, cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.GetPolicyAsync"/>
    public async Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync("SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = @t;", ReadPolicy,
            cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.SavePolicyAsync"/>
    public Task<FencedResult<StoredPolicy?>> SavePolicyAsync(TailnetFence fence, string text, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(text);
        var updated = Stamp(now);
        return fencing.WriteAsync<StoredPolicy?>(fence, ChangeKinds.PolicySaved, async (connection, transaction, revision) =>
        {
            var version = await ScalarAsync(connection, transaction,
                """
                INSERT INTO policies (tailnet, text, version, updated, revision)
                SELECT @t, @x, 1, @u, @r WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = @t)
                ON CONFLICT (tailnet) DO UPDATE SET text = excluded.text, version = policies.version + 1, updated = excluded.updated,
                    revision = excluded.revision
                RETURNING version;
                """, cancellationToken, ("@t", fence.Tailnet), ("@x", text), ("@u", updated), ("@r", (long)revision)).ConfigureAwait(false);
            if (version is null)
            {
                return new WriteStep<StoredPolicy?>(false, null);
            }
            ulong saved = (ulong)(long)version;
            var policy = new StoredPolicy(fence.Tailnet, text, saved, updated) { Revision = revision };
            return new WriteStep<StoredPolicy?>(true, policy, 0, saved.ToString(CultureInfo.InvariantCulture));
        }, cancellationToken);
    }

    private static StoredTailnet ReadTailnet(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), ReadStamp(reader, 2), TimeSpan.FromMilliseconds(reader.GetInt64(3)));

    private static StoredPolicy ReadPolicy(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), (ulong)reader.GetInt64(2), ReadStamp(reader, 3)) { Revision = (ulong)reader.GetInt64(4) };

    private static StoredAuthKey ReadAuthKey(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2), reader.GetBoolean(3), reader.GetBoolean(4),
            reader.GetFieldValue<string[]>(5), ReadStamp(reader, 6), ReadStamp(reader, 7), reader.GetInt32(8), reader.GetBoolean(9),
            reader.GetString(10), reader.GetString(11));
}
