using System.Globalization;
using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

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
public sealed class PostgresCoordinationStore : ICoordinationStore, ICoordinationLeaseStore, IAsyncDisposable, IDisposable
{
    // A facade over parts that each own their tables and statements and hold nothing but the
    // shared connections (and the fencing, for the parts that write a tailnet). The store owns the
    // connections, the only state that changes: both pools and the disposed flag. The schema and
    // the server key, which concern the whole database, stay here.
    private readonly PostgresConnections _connections;
    private readonly PostgresFencing _fencing;
    private readonly PostgresTailnetStore _tailnets;
    private readonly PostgresNodeStore _nodes;
    private readonly PostgresLeaseStore _leases;
    private readonly PostgresIncidentStore _incidents;

    /// <summary>
    /// Creates the store on the database of <paramref name="connectionString"/> (a multi-host
    /// connection string gives a multi-host data source), with its two pools. Nothing is opened
    /// until <see cref="InitializeAsync"/>.
    /// </summary>
    /// <param name="connectionString">An Npgsql connection string.</param>
    /// <param name="options">Session settings and the renewal pool's size; default <see cref="PostgresStoreOptions"/>'s defaults.</param>
    /// <exception cref="ArgumentException">The connection string or an option is invalid.</exception>
    public PostgresCoordinationStore(string connectionString, PostgresStoreOptions? options = null)
        : this(CreateConnections(connectionString, options))
    {
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
        : this(PostgresConnections.Borrow(dataSource, renewalDataSource))
    {
    }

    private PostgresCoordinationStore(PostgresConnections connections)
    {
        _connections = connections;
        _fencing = new PostgresFencing(connections);
        _tailnets = new PostgresTailnetStore(connections, _fencing);
        _nodes = new PostgresNodeStore(connections, _fencing);
        _leases = new PostgresLeaseStore(connections);
        _incidents = new PostgresIncidentStore(connections);
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
        _connections.RunAsync(Retry.Once, async (connection, _) =>
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
                catch (PostgresException exception) when (!PostgresConnections.ConnectionBroke(exception))
                {
                    throw new StoreSchemaException($"Schema migration {next.Version} failed: {exception.Message}", exception);
                }
            }
        }, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]> GetOrAddServerKeyAsync(ReadOnlyMemory<byte> candidate, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var secret = candidate.ToArray();
        return _connections.RunAsync(Retry.Once, async (connection, _) =>
        {
            // Two statements: the SELECT must see a key committed by a concurrent caller while the
            // INSERT waited on it (one statement would read the snapshot from before).
            await ExecuteAsync(connection, null, "INSERT INTO server_key (id, secret, created) VALUES (1, @s, @c) ON CONFLICT (id) DO NOTHING;",
                cancellationToken, ("@s", secret), ("@c", Stamp(now))).ConfigureAwait(false);
            return (byte[])(await ScalarAsync(connection, null, "SELECT secret FROM server_key WHERE id = 1;", cancellationToken).ConfigureAwait(false))!;
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken) =>
        _tailnets.TryCreateTailnetAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken) => _tailnets.GetTailnetAsync(name, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken) => _tailnets.ListTailnetsAsync(cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> DeleteTailnetAsync(TailnetFence fence, CancellationToken cancellationToken) =>
        _tailnets.DeleteTailnetAsync(fence, cancellationToken);

    /// <inheritdoc />
    public Task<StoredTailnetState?> LoadTailnetAsync(string tailnet, CancellationToken cancellationToken) =>
        _tailnets.LoadTailnetAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> TryCreateAuthKeyAsync(TailnetFence fence, StoredAuthKey key, CancellationToken cancellationToken) =>
        _tailnets.TryCreateAuthKeyAsync(fence, key, cancellationToken);

    /// <inheritdoc />
    public Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken) => _tailnets.GetAuthKeyAsync(id, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken) =>
        _tailnets.ListAuthKeysAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> RevokeAuthKeyAsync(TailnetFence fence, string id, CancellationToken cancellationToken) =>
        _tailnets.RevokeAuthKeyAsync(fence, id, cancellationToken);

    /// <inheritdoc />
    public Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken) =>
        _nodes.GetNodeByKeyAsync(nodeKey, cancellationToken);

    /// <inheritdoc />
    public Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken) => _nodes.GetNodeAsync(id, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken) =>
        _nodes.ListNodesAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<long> CountNodesAsync(CancellationToken cancellationToken) => _nodes.CountNodesAsync(cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken) =>
        _nodes.ListNamesWithPrefixAsync(tailnet, prefix, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// Inserts of one tailnet are ordered by the fence, but a node key is unique across the
    /// deployment: an insert racing one of another tailnet for the same key (or any insert the
    /// checks did not see coming) fails on the unique index and is answered with the outcome
    /// that names the constraint, as the checks would have.
    /// </remarks>
    public Task<FencedResult<NodeInsertResult>> InsertNodeAsync(TailnetFence fence, StoredNode node, CancellationToken cancellationToken) =>
        _nodes.InsertNodeAsync(fence, node, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<NodeKeyUpdateOutcome>> UpdateNodeKeyAsync(TailnetFence fence, ulong id, ReadOnlyMemory<byte> expectedOldKey,
        ReadOnlyMemory<byte> newKey, DateTimeOffset keyExpiry, string? authKeyId, DateTimeOffset now, CancellationToken cancellationToken) =>
        _nodes.UpdateNodeKeyAsync(fence, id, expectedOldKey, newKey, keyExpiry, authKeyId, now, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> SetKeyExpiryAsync(TailnetFence fence, ulong id, DateTimeOffset keyExpiry, CancellationToken cancellationToken) =>
        _nodes.SetKeyExpiryAsync(fence, id, keyExpiry, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> UpdateNodeAsync(TailnetFence fence, ulong id, string hostname, IReadOnlyList<string> tags,
        CancellationToken cancellationToken) =>
        _nodes.UpdateNodeAsync(fence, id, hostname, tags, cancellationToken);

    /// <inheritdoc />
    /// <remarks>One round trip: a batch of one <c>UPDATE</c> per state, applied in order (as the SQLite store applies them).</remarks>
    public Task<FencedResult<int>> UpdateLiveStateAsync(TailnetFence fence, IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken) =>
        _nodes.UpdateLiveStateAsync(fence, states, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<bool>> DeleteNodeAsync(TailnetFence fence, ulong id, CancellationToken cancellationToken) =>
        _nodes.DeleteNodeAsync(fence, id, cancellationToken);

    /// <inheritdoc />
    public Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken) => _tailnets.GetPolicyAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<FencedResult<StoredPolicy?>> SavePolicyAsync(TailnetFence fence, string text, DateTimeOffset now, CancellationToken cancellationToken) =>
        _tailnets.SavePolicyAsync(fence, text, now, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        _nodes.ListEphemeralNodesIdleSinceAsync(cutoff, limit, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit,
        CancellationToken cancellationToken) =>
        _nodes.ListNodesWithKeyExpiryAsync(after, upTo, limit, cancellationToken);

    /// <inheritdoc />
    public Task<StoredChange?> FindChangeAsync(string tailnet, string idempotencyKey, CancellationToken cancellationToken) =>
        _fencing.FindChangeAsync(tailnet, idempotencyKey, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredChange>> ListChangesAsync(string tailnet, ulong afterRevision, int limit, CancellationToken cancellationToken) =>
        _fencing.ListChangesAsync(tailnet, afterRevision, limit, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// One statement. It raises the floor only of lease rows nobody holds locked
    /// (<c>FOR UPDATE SKIP LOCKED</c>): a tailnet being written or renewed right now is pruned
    /// next time, and pruning never waits on (nor deadlocks with) renewals, which lock many lease
    /// rows too.
    /// </remarks>
    public Task<int> PruneChangesAsync(TimeSpan olderThan, int keep, CancellationToken cancellationToken) =>
        _fencing.PruneChangesAsync(olderThan, keep, cancellationToken);

    /// <inheritdoc />
    public Task RegisterServerAsync(string serverId, string url, string instance, CancellationToken cancellationToken) =>
        _leases.RegisterServerAsync(serverId, url, instance, cancellationToken);

    /// <inheritdoc />
    public Task<bool> DeregisterServerAsync(string serverId, string instance, CancellationToken cancellationToken) =>
        _leases.DeregisterServerAsync(serverId, instance, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// One statement on the renewal pool, whatever the number of leases: the heartbeat and the
    /// renewal of every lease of (<paramref name="serverId"/>, <paramref name="instance"/>), the
    /// latter only when the former found the server's row still naming this instance. Its first
    /// row (tailnet null) says the heartbeat was written; the others are the renewed leases. The
    /// first heartbeat since the database started also records that time (the sticky period of
    /// <see cref="ClaimAsync(LeaseClaim, CancellationToken)"/> runs from it).
    /// </remarks>
    public Task<LeaseRenewal> RenewAsync(string serverId, string instance, TimeSpan ttl, string load, CancellationToken cancellationToken) =>
        _leases.RenewAsync(serverId, instance, ttl, load, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// Candidates are read <c>FOR UPDATE SKIP LOCKED</c>: parallel claimers (on any server) never
    /// wait on each other and never see the same row, so no lease is granted twice. The sticky
    /// period runs from the first heartbeat that reached the database since it last started
    /// (recorded per <c>pg_postmaster_start_time()</c> in <c>coordination_store_starts</c>; none yet
    /// counts as now): after a
    /// restart every lease looks expired, and previous owners get that long to renew, however long
    /// crash recovery kept the database from accepting statements.
    /// </remarks>
    public Task<IReadOnlyList<LeaseGrant>> ClaimAsync(LeaseClaim claim, CancellationToken cancellationToken) =>
        _leases.ClaimAsync(claim, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// One statement: the compare-and-set on (owner, epoch), joined to the row as it was (locked
    /// first) for the previous owner's instance and renewal time.
    /// </remarks>
    public Task<LeaseGrant?> HandOverAsync(string tailnet, string fromServer, ulong expectedEpoch, string toServer, string toInstance, TimeSpan ttl,
        CancellationToken cancellationToken) =>
        _leases.HandOverAsync(tailnet, fromServer, expectedEpoch, toServer, toInstance, ttl, cancellationToken);

    /// <inheritdoc />
    public Task<bool> ReleaseAsync(string tailnet, string serverId, ulong epoch, CancellationToken cancellationToken) =>
        _leases.ReleaseAsync(tailnet, serverId, epoch, cancellationToken);

    /// <inheritdoc />
    public Task<StoredLease?> GetLeaseAsync(string tailnet, CancellationToken cancellationToken) => _leases.GetLeaseAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredLease>> ListLeasesAsync(CancellationToken cancellationToken) => _leases.ListLeasesAsync(cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredServer>> ListServersAsync(CancellationToken cancellationToken) => _leases.ListServersAsync(cancellationToken);

    /// <inheritdoc />
    public Task<bool> SetDrainingAsync(string serverId, bool draining, CancellationToken cancellationToken) =>
        _leases.SetDrainingAsync(serverId, draining, cancellationToken);

    /// <inheritdoc />
    public Task<bool> ReleaseQuarantineAsync(string tailnet, CancellationToken cancellationToken) => _leases.ReleaseQuarantineAsync(tailnet, cancellationToken);

    /// <inheritdoc />
    public Task<bool> TryHoldRoleAsync(string role, string serverId, string instance, TimeSpan ttl, CancellationToken cancellationToken) =>
        _leases.TryHoldRoleAsync(role, serverId, instance, ttl, cancellationToken);

    /// <inheritdoc />
    public Task<string?> GetSettingAsync(string name, CancellationToken cancellationToken) => _leases.GetSettingAsync(name, cancellationToken);

    /// <inheritdoc />
    public Task SetSettingAsync(string name, string value, CancellationToken cancellationToken) => _leases.SetSettingAsync(name, value, cancellationToken);

    /// <inheritdoc />
    public Task OpenIncidentAsync(StoredIncident incident, CancellationToken cancellationToken) => _incidents.OpenIncidentAsync(incident, cancellationToken);

    /// <inheritdoc />
    public Task SaveIncidentTailnetAsync(StoredIncidentTailnet part, CancellationToken cancellationToken) =>
        _incidents.SaveIncidentTailnetAsync(part, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredIncident>> ListIncidentsAsync(int limit, CancellationToken cancellationToken) =>
        _incidents.ListIncidentsAsync(limit, cancellationToken);

    /// <summary>Closes the data sources the store created (their pooled connections); one it was given stays open. Idempotent.</summary>
    public ValueTask DisposeAsync() => _connections.DisposeAsync();

    /// <summary>Closes the data sources the store created (their pooled connections); one it was given stays open. Idempotent.</summary>
    public void Dispose() => _connections.Dispose();

    private static PostgresConnections CreateConnections(string connectionString, PostgresStoreOptions? options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        options ??= new PostgresStoreOptions();
        options.Validate();
        return PostgresConnections.Create(PrepareConnectionString(connectionString, options), options.RenewalPoolSize);
    }
}
