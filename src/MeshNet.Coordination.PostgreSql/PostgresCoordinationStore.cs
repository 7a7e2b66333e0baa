using System.Data;
using System.Globalization;
using System.Net;
using MeshNet.Coordination.Storage;
using Npgsql;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The store of a sharded deployment: several coordination servers share one PostgreSQL
/// database, and each tailnet is served by the holder of its lease (see
/// <see cref="ICoordinationLeaseStore"/>). Behaves exactly as <see cref="SqliteCoordinationStore"/>
/// (the same contract tests run against both); the database's clock is PostgreSQL's
/// <c>now()</c>, so every server agrees on lease expiry whatever its own clock says.
/// </summary>
/// <remarks>
/// <para>Thread-safe: every method is one atomic operation on a pooled connection. Connections
/// come from a main pool, and lease renewals (<see cref="RenewAsync"/>) from a separate small one,
/// so that a busy store can never starve them.</para>
/// <para>Every connection this store opens itself runs with <c>lock_timeout</c> and
/// <c>idle_in_transaction_session_timeout</c> (<see cref="PostgresStoreOptions"/>): a paused
/// server holding a row lock cannot block the takeover of its tailnets for long. Ownership is
/// never held by an advisory lock; only the lease rows decide it.</para>
/// <para>Fenced writes run in READ COMMITTED transactions that first advance the lease row's
/// revision under the writer's epoch; the row lock this takes orders every write of a tailnet.
/// Expected conflicts (a name or key taken, even by a concurrent insert) are results; any other
/// database failure propagates as a <see cref="NpgsqlException"/>. A call whose connection
/// turns out broken (the database restarted or failed over) clears the pool and runs once more
/// on a new connection when nothing can have been written: reads, idempotent statements, and
/// transactions whose <c>COMMIT</c> was not sent. A broken commit's outcome is unknown: the
/// exception propagates, and the caller retries with the same idempotency key.</para>
/// <para>Ownership: the store disposes the data sources it created, never one it was given.</para>
/// </remarks>
public sealed partial class PostgresCoordinationStore : ICoordinationStore, ICoordinationLeaseStore, IAsyncDisposable, IDisposable
{
    private const string NodeColumns =
        "id, tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user_name, " +
        "online, endpoints, instance, revision, tags_revision";
    private const string AuthKeyColumns = "id, tailnet, secret_hash, reusable, ephemeral, tags, created, expires, uses, revoked, description, user_name";
    private const string TailnetColumns = "name, domain, created, node_key_lifetime_ms";

    /// <summary>The database's clock at millisecond precision (as every stored instant): the time of the transaction's start.</summary>
    private const string DbNow = "date_trunc('milliseconds', now())";

    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource _renewalSource;
    private readonly bool _ownsDataSources;
    private int _disposed;

    /// <summary>
    /// Creates the store on the database of <paramref name="connectionString"/> (a multi-host
    /// connection string gives a multi-host data source), with its two pools. Nothing is opened
    /// until <see cref="InitializeAsync"/>.
    /// </summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="options">Session settings and the renewal pool's size; default <see cref="PostgresStoreOptions"/>'s defaults.</param>
    /// <exception cref="ArgumentException">The connection string or an option is invalid.</exception>
    public PostgresCoordinationStore(string connectionString, PostgresStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        options ??= new PostgresStoreOptions();
        options.Validate();
        var main = new NpgsqlConnectionStringBuilder(PrepareConnectionString(connectionString, options));
        if (string.IsNullOrEmpty(main.ApplicationName))
        {
            main.ApplicationName = "meshnet-coordination";
        }
        var renewal = new NpgsqlConnectionStringBuilder(main.ConnectionString)
        {
            MaxPoolSize = options.RenewalPoolSize,
            MinPoolSize = 0,
            ApplicationName = main.ApplicationName + " renewals",
        };
        _dataSource = NpgsqlDataSource.Create(main);
        try
        {
            _renewalSource = NpgsqlDataSource.Create(renewal);
        }
        catch
        {
            _dataSource.Dispose();
            throw;
        }
        _ownsDataSources = true;
    }

    /// <summary>
    /// Creates the store on data sources the caller owns (for instance an
    /// <see cref="NpgsqlMultiHostDataSource"/> targeting the primary of a replicated cluster).
    /// The store cannot change their settings: build them from
    /// <see cref="PrepareConnectionString"/> so that their sessions get the lock and idle
    /// timeouts. Disposing the store leaves them open.
    /// </summary>
    /// <param name="dataSource">The main pool.</param>
    /// <param name="renewalDataSource">
    /// A separate small pool used only by <see cref="RenewAsync"/>; null renews on
    /// <paramref name="dataSource"/>, where a busy pool can delay renewals.
    /// </param>
    public PostgresCoordinationStore(NpgsqlDataSource dataSource, NpgsqlDataSource? renewalDataSource = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSource = dataSource;
        _renewalSource = renewalDataSource ?? dataSource;
        _ownsDataSources = false;
    }

    /// <summary>
    /// Returns <paramref name="connectionString"/> with the session settings of
    /// <paramref name="options"/> (<c>lock_timeout</c> and <c>idle_in_transaction_session_timeout</c>
    /// appended to its <c>Options</c>) and its command timeout: for callers that build their own
    /// data sources.
    /// </summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="options">The settings; default <see cref="PostgresStoreOptions"/>'s defaults.</param>
    /// <returns>The connection string to build data sources from.</returns>
    public static string PrepareConnectionString(string connectionString, PostgresStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        options ??= new PostgresStoreOptions();
        options.Validate();
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        string settings = string.Create(CultureInfo.InvariantCulture,
            $"-c lock_timeout={Milliseconds(options.LockTimeout)} -c idle_in_transaction_session_timeout={Milliseconds(options.IdleInTransactionTimeout)}");
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? settings : builder.Options + " " + settings;
        builder.CommandTimeout = (int)Math.Ceiling(options.CommandTimeout.TotalSeconds);
        return builder.ConnectionString;

        static long Milliseconds(TimeSpan value) => (long)Math.Ceiling(value.TotalMilliseconds);
    }

    /// <inheritdoc />
    public Task<int> InitializeAsync(CancellationToken cancellationToken) =>
        // Safe to run again from the start on a broken connection: each step re-reads the version.
        RunAsync(Retry.Once, async (connection, _) =>
        {
            while (true)
            {
                // One migration per transaction, under a transaction-scoped advisory lock: servers
                // starting together apply each migration once, in order, and see each other's.
                await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
                await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(@k);", cancellationToken, ("@k", PostgresMigrations.LockKey))
                    .ConfigureAwait(false);
                await ExecuteAsync(connection, transaction, PostgresMigrations.VersionTable, cancellationToken).ConfigureAwait(false);
                int version = (int)(await ScalarAsync(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM schema_version;", cancellationToken)
                    .ConfigureAwait(false))!;
                if (version > PostgresMigrations.Latest)
                {
                    throw new StoreSchemaException(
                        $"The database schema is version {version}; this version of the service knows up to {PostgresMigrations.Latest}.");
                }
                var next = PostgresMigrations.All.FirstOrDefault(migration => migration.Version > version);
                if (next.Sql is null)
                {
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return version;
                }
                try
                {
                    await ExecuteAsync(connection, transaction, next.Sql, cancellationToken).ConfigureAwait(false);
                    await ExecuteAsync(connection, transaction, "INSERT INTO schema_version (version) VALUES (@v);", cancellationToken, ("@v", next.Version))
                        .ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (PostgresException exception) when (!ConnectionBroke(exception))
                {
                    throw new StoreSchemaException($"Schema migration {next.Version} failed: {exception.Message}", exception);
                }
            }
        }, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]> GetOrAddServerKeyAsync(ReadOnlyMemory<byte> candidate, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var secret = candidate.ToArray();
        return RunAsync(Retry.Once, async (connection, _) =>
        {
            // Two statements: the SELECT must see a key committed by a concurrent caller while the
            // INSERT waited on it (one statement would read the snapshot from before).
            await ExecuteAsync(connection, null, "INSERT INTO server_key (id, secret, created) VALUES (1, @s, @c) ON CONFLICT (id) DO NOTHING;",
                cancellationToken, ("@s", secret), ("@c", Stamp(now))).ConfigureAwait(false);
            return (byte[])(await ScalarAsync(connection, null, "SELECT secret FROM server_key WHERE id = 1;", cancellationToken).ConfigureAwait(false))!;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tailnet);
        return RunAsync(Retry.Once, async (connection, attempt) =>
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

    /// <inheritdoc />
    public async Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {TailnetColumns} FROM tailnets WHERE name = @n;", ReadTailnet, cancellationToken, ("@n", name))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {TailnetColumns} FROM tailnets ORDER BY name;", ReadTailnet, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> DeleteTailnetAsync(TailnetFence fence, CancellationToken cancellationToken)
    {
        ValidateFence(fence);
        return RunAsync(Retry.Once, async (connection, attempt) =>
        {
            await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
            var revision = await AdvanceAsync(connection, transaction, fence, cancellationToken).ConfigureAwait(false);
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

    /// <inheritdoc />
    public Task<StoredTailnetState?> LoadTailnetAsync(string tailnet, CancellationToken cancellationToken) =>
        RunAsync(Retry.Once, async (connection, _) =>
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
            var nodes = await QueryAsync(connection, transaction, $"SELECT {NodeColumns} FROM nodes WHERE tailnet = @t ORDER BY id;", ReadNode,
                cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
            var policies = await QueryAsync(connection, transaction, "SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = @t;",
                ReadPolicy, cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
            var removals = await QueryAsync(connection, transaction,
                "SELECT node_id, revision FROM tailnet_changes WHERE tailnet = @t AND kind = @k AND revision > @f ORDER BY revision;",
                reader => ((ulong)reader.GetInt64(0), (ulong)reader.GetInt64(1)), cancellationToken,
                ("@t", tailnet), ("@k", ChangeKinds.NodeRemoved), ("@f", (long)floor)).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return (StoredTailnetState?)new StoredTailnetState(tailnets[0], nodes, policies.Count == 0 ? null : policies[0], removals, revision, floor);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> TryCreateAuthKeyAsync(TailnetFence fence, StoredAuthKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Tailnet != fence.Tailnet)
        {
            throw new ArgumentException("The auth key's tailnet must be the fence's.", nameof(key));
        }
        return FencedAsync(fence, ChangeKinds.AuthKeyCreated, async (connection, transaction, revision) =>
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

    /// <inheritdoc />
    public async Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE id = @id;", ReadAuthKey, cancellationToken, ("@id", id))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE tailnet = @t ORDER BY created, id;", ReadAuthKey, cancellationToken, ("@t", tailnet));

    /// <inheritdoc />
    public Task<FencedResult<bool>> RevokeAuthKeyAsync(TailnetFence fence, string id, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.AuthKeyRevoked, async (connection, transaction, revision) =>
        {
            bool revoked = await ExecuteAsync(connection, transaction, "UPDATE auth_keys SET revoked = true WHERE id = @id AND tailnet = @t;",
                cancellationToken, ("@id", id), ("@t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(revoked, revoked, 0, id);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE node_key = @k;", ReadNode, cancellationToken, ("@k", nodeKey.ToArray()))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public async Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE id = @id;", ReadNode, cancellationToken, ("@id", (long)id))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE tailnet = @t ORDER BY id;", ReadNode, cancellationToken, ("@t", tailnet));

    /// <inheritdoc />
    public async Task<long> CountNodesAsync(CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT COUNT(*) FROM nodes;", reader => reader.GetInt64(0), cancellationToken).ConfigureAwait(false);
        return list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken) =>
        // Names are [a-z0-9-], all below '~' in the "C" collation of the column: a range scan of the (tailnet, name) index.
        QueryAsync("SELECT name FROM nodes WHERE tailnet = @t AND name >= @p AND name < @p || '~';", reader => reader.GetString(0),
            cancellationToken, ("@t", tailnet), ("@p", prefix));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        QueryAsync(
            $"SELECT {NodeColumns} FROM nodes WHERE ephemeral AND NOT online AND COALESCE(last_seen, created) < @c ORDER BY COALESCE(last_seen, created) LIMIT @l;",
            ReadNode, cancellationToken, ("@c", Stamp(cutoff)), ("@l", limit));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit,
        CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE key_expiry > @a AND key_expiry <= @u ORDER BY key_expiry LIMIT @l;",
            ReadNode, cancellationToken, ("@a", Stamp(after)), ("@u", Stamp(upTo)), ("@l", limit));

    /// <inheritdoc />
    public async Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = @t;", ReadPolicy,
            cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<FencedResult<StoredPolicy?>> SavePolicyAsync(TailnetFence fence, string text, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(text);
        var updated = Stamp(now);
        return FencedAsync<StoredPolicy?>(fence, ChangeKinds.PolicySaved, async (connection, transaction, revision) =>
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

    /// <summary>Closes the data sources the store created (their pooled connections); one it was given stays open. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !_ownsDataSources)
        {
            return;
        }
        await _renewalSource.DisposeAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Closes the data sources the store created (their pooled connections); one it was given stays open. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !_ownsDataSources)
        {
            return;
        }
        _renewalSource.Dispose();
        _dataSource.Dispose();
    }

    /// <summary>An instant as stored: UTC (what <c>timestamptz</c> takes), truncated to the millisecond as the SQLite store keeps it.</summary>
    private static DateTimeOffset Stamp(DateTimeOffset value) => DateTimeOffset.FromUnixTimeMilliseconds(value.ToUnixTimeMilliseconds());

    private static DateTimeOffset ReadStamp(NpgsqlDataReader reader, int ordinal) => reader.GetFieldValue<DateTimeOffset>(ordinal);

    private static DateTimeOffset? ReadStampOrNull(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);

    private static string? ReadStringOrNull(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static StoredTailnet ReadTailnet(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), ReadStamp(reader, 2), TimeSpan.FromMilliseconds(reader.GetInt64(3)));

    private static StoredPolicy ReadPolicy(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), (ulong)reader.GetInt64(2), ReadStamp(reader, 3)) { Revision = (ulong)reader.GetInt64(4) };

    private static StoredAuthKey ReadAuthKey(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2), reader.GetBoolean(3), reader.GetBoolean(4),
            reader.GetFieldValue<string[]>(5), ReadStamp(reader, 6), ReadStamp(reader, 7), reader.GetInt32(8), reader.GetBoolean(9),
            reader.GetString(10), reader.GetString(11));

    private static StoredNode ReadNode(NpgsqlDataReader reader) =>
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
}
