using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// Who serves which tailnet, on PostgreSQL: the server directory (registration, heartbeats,
/// draining), the lease columns of <c>tailnet_leases</c> (claims, renewals, handovers, releases,
/// quarantine), the record of database starts that times the sticky period, cluster roles and
/// cluster settings. The lease and server half of <see cref="ICoordinationLeaseStore"/> for
/// <see cref="PostgresCoordinationStore"/>.
/// </summary>
/// <remarks>
/// <para>Thread-safe and stateless but for the shared <see cref="PostgresConnections"/>, which it
/// does not own; after they are disposed every call throws <see cref="ObjectDisposedException"/>.
/// Renewals run on the renewal pool, everything else on the main pool.</para>
/// <para>Expiry is always the database's clock (<c>now()</c>). Compare-and-set statements
/// (handover, release, quarantine release) are never retried on a broken connection.</para>
/// </remarks>
/// <param name="connections">The store's connections (not owned).</param>
internal sealed class PostgresLeaseStore(PostgresConnections connections)
{
    private const string LeaseColumns =
        "l.tailnet, l.owner, l.owner_instance, s.url, l.epoch, l.expires_at - now(), l.revision, l.log_floor, l.quarantined, l.quarantine_reason, " +
        "l.granted_at, l.renewed_at, l.moved_at, now() - s.heartbeat_at";

    /// <inheritdoc cref="PostgresCoordinationStore.RegisterServerAsync"/>
    public Task RegisterServerAsync(string serverId, string url, string instance, CancellationToken cancellationToken) =>
        connections.ExecuteAsync(
            $"""
            INSERT INTO coordination_servers (id, url, instance, started_at, heartbeat_at) VALUES (@id, @u, @i, {DbNow}, {DbNow})
            ON CONFLICT (id) DO UPDATE SET url = excluded.url, instance = excluded.instance, started_at = excluded.started_at,
                heartbeat_at = excluded.heartbeat_at, draining = false, stopped = false, load = '';
            """, cancellationToken, ("@id", serverId), ("@u", url), ("@i", instance));

    /// <inheritdoc cref="PostgresCoordinationStore.DeregisterServerAsync"/>
    public async Task<bool> DeregisterServerAsync(string serverId, string instance, CancellationToken cancellationToken) =>
        await connections.ExecuteAsync("UPDATE coordination_servers SET stopped = true WHERE id = @id AND instance = @i;", cancellationToken,
            ("@id", serverId), ("@i", instance)).ConfigureAwait(false) == 1;

    /// <inheritdoc cref="PostgresCoordinationStore.RenewAsync"/>
    public async Task<LeaseRenewal> RenewAsync(string serverId, string instance, TimeSpan ttl, string load, CancellationToken cancellationToken)
    {
        // Idempotent: renewing again renews the same leases.
        var rows = await connections.RunRenewalAsync(Retry.Once, (connection, _) => QueryAsync(connection, null,
            $"""
            WITH beat AS (
                UPDATE coordination_servers SET heartbeat_at = {DbNow}, load = @l WHERE id = @id AND instance = @i RETURNING id
            ), reached AS (
                INSERT INTO coordination_store_starts (postmaster_start, first_reached) VALUES (pg_postmaster_start_time(), now())
                ON CONFLICT (postmaster_start) DO NOTHING
            ), renewed AS (
                UPDATE tailnet_leases SET expires_at = now() + @ttl, renewed_at = {DbNow}, renewed_since_grant = true
                WHERE owner = @id AND owner_instance = @i AND EXISTS (SELECT 1 FROM beat)
                RETURNING tailnet, epoch
            )
            SELECT NULL::text, 0::bigint FROM beat
            UNION ALL
            SELECT tailnet, epoch FROM renewed;
            """, reader => reader.IsDBNull(0) ? (HeldLease?)null : new HeldLease(reader.GetString(0), (ulong)reader.GetInt64(1)), cancellationToken,
            ("@l", load), ("@id", serverId), ("@i", instance), ("@ttl", ttl)), cancellationToken).ConfigureAwait(false);
        bool registered = rows.Any(row => row is null);
        return new LeaseRenewal(registered ? rows.Where(row => row is not null).Select(row => row!.Value).ToList() : [], registered);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ClaimAsync"/>
    public Task<IReadOnlyList<LeaseGrant>> ClaimAsync(LeaseClaim claim, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        return connections.RunAsync(Retry.Once, (connection, attempt) => ClaimAsync(connection, attempt, claim, cancellationToken), cancellationToken);
    }

    private static async Task<IReadOnlyList<LeaseGrant>> ClaimAsync(NpgsqlConnection connection, Attempt attempt, LeaseClaim claim,
        CancellationToken cancellationToken)
    {
        await using var transaction = await BeginAsync(connection, cancellationToken).ConfigureAwait(false);
        var standing = await QueryAsync(connection, transaction,
            $"""
            SELECT draining, {DbNow}, now() - COALESCE(
                (SELECT first_reached FROM coordination_store_starts WHERE postmaster_start = pg_postmaster_start_time()), now()) >= @sticky
            FROM coordination_servers WHERE id = @id AND instance = @i;
            """,
            reader => (Draining: reader.GetBoolean(0), Now: ReadStamp(reader, 1), StickyOver: reader.GetBoolean(2)), cancellationToken,
            ("@sticky", claim.StickyPeriod), ("@id", claim.ServerId), ("@i", claim.Instance)).ConfigureAwait(false);
        if (standing.Count == 0 || standing[0].Draining)
        {
            return []; // not registered (or replaced), or draining
        }
        var (_, nowStamp, stickyOver) = standing[0];
        long now = nowStamp.ToUnixTimeMilliseconds();
        var candidates = await QueryAsync(connection, transaction,
            """
            SELECT tailnet, owner, owner_instance, epoch, renewed_at, renewed_since_grant, strike_at FROM tailnet_leases
            WHERE NOT quarantined AND (@only::text IS NULL OR tailnet = @only::text)
              AND NOT (owner IS NOT NULL AND owner = @id AND owner_instance IS NOT NULL AND owner_instance = @i)
              AND (owner = @id OR (expires_at <= now() AND (owner IS NULL OR @sticky)))
            ORDER BY expires_at LIMIT @l
            FOR UPDATE SKIP LOCKED;
            """, ReadCandidate, cancellationToken, ("@only", claim.Tailnet), ("@id", claim.ServerId), ("@i", claim.Instance),
            ("@sticky", stickyOver), ("@l", claim.Limit)).ConfigureAwait(false);
        if (candidates.Count == 0)
        {
            return []; // nothing written: disposing the transaction ends it
        }
        var grants = new List<LeaseGrant>(candidates.Count);
        await using var batch = new NpgsqlBatch(connection, transaction);
        foreach (var candidate in candidates)
        {
            var decision = LeaseRules.Decide(candidate, now, claim.QuarantineWindow);
            NpgsqlBatchCommand command;
            if (decision.Quarantine)
            {
                command = new NpgsqlBatchCommand(
                    "UPDATE tailnet_leases SET quarantined = true, quarantine_reason = @r, owner = NULL, owner_instance = NULL, strike_at = @now WHERE tailnet = @t;");
                command.Parameters.Add(new NpgsqlParameter("@r", decision.Reason));
                grants.Add(candidate.Grant(candidate.Epoch, now, quarantined: true));
            }
            else
            {
                command = new NpgsqlBatchCommand(
                    """
                    UPDATE tailnet_leases SET owner = @id, owner_instance = @i, epoch = epoch + 1, expires_at = now() + @ttl, granted_at = @now,
                        renewed_at = @now, renewed_since_grant = false, strike_at = @strike::timestamptz
                    WHERE tailnet = @t;
                    """);
                command.Parameters.Add(new NpgsqlParameter("@id", claim.ServerId));
                command.Parameters.Add(new NpgsqlParameter("@i", claim.Instance));
                command.Parameters.Add(new NpgsqlParameter("@ttl", claim.Ttl));
                command.Parameters.Add(new NpgsqlParameter("@strike", decision.StrikeAt is { } strike ? DateTimeOffset.FromUnixTimeMilliseconds(strike) : DBNull.Value));
                grants.Add(candidate.Grant(candidate.Epoch + 1, now, quarantined: false));
            }
            command.Parameters.Add(new NpgsqlParameter("@now", nowStamp));
            command.Parameters.Add(new NpgsqlParameter("@t", candidate.Tailnet));
            batch.BatchCommands.Add(command);
        }
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await CommitAsync(transaction, attempt, cancellationToken).ConfigureAwait(false);
        return grants;
    }

    /// <inheritdoc cref="PostgresCoordinationStore.HandOverAsync"/>
    public async Task<LeaseGrant?> HandOverAsync(string tailnet, string fromServer, ulong expectedEpoch, string toServer, string toInstance, TimeSpan ttl,
        CancellationToken cancellationToken)
    {
        // Not retried: run again after it took effect, the compare-and-set would fail.
        var rows = await connections.RunAsync(Retry.Never, (connection, _) => QueryAsync(connection, null,
            $"""
            UPDATE tailnet_leases l SET owner = @to, owner_instance = @ti, epoch = l.epoch + 1, expires_at = now() + @ttl, granted_at = {DbNow},
                renewed_at = {DbNow}, renewed_since_grant = true, moved_at = {DbNow}
            FROM (SELECT tailnet, owner_instance, renewed_at FROM tailnet_leases
                  WHERE tailnet = @t AND owner = @f AND epoch = @e AND NOT quarantined FOR UPDATE) old
            WHERE l.tailnet = old.tailnet AND l.owner = @f AND l.epoch = @e AND NOT l.quarantined
            RETURNING old.owner_instance, old.renewed_at, l.granted_at;
            """, reader => (Instance: ReadStringOrNull(reader, 0), Renewed: ReadStampOrNull(reader, 1), Granted: ReadStamp(reader, 2)), cancellationToken,
            ("@to", toServer), ("@ti", toInstance), ("@ttl", ttl), ("@t", tailnet), ("@f", fromServer), ("@e", (long)expectedEpoch)),
            cancellationToken).ConfigureAwait(false);
        return rows.Count == 0 ? null : new LeaseGrant(tailnet, expectedEpoch + 1, fromServer, rows[0].Instance, rows[0].Renewed, rows[0].Granted);
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ReleaseAsync"/>
    public async Task<bool> ReleaseAsync(string tailnet, string serverId, ulong epoch, CancellationToken cancellationToken) =>
        // Not retried: run again after it took effect, it would find nothing to release.
        await connections.ExecuteAsync(Retry.Never,
            """
            UPDATE tailnet_leases SET owner = NULL, owner_instance = NULL, expires_at = '1970-01-01 00:00:00+00'
            WHERE tailnet = @t AND owner = @id AND epoch = @e;
            """, cancellationToken, ("@t", tailnet), ("@id", serverId), ("@e", (long)epoch)).ConfigureAwait(false) == 1;

    /// <inheritdoc cref="PostgresCoordinationStore.GetLeaseAsync"/>
    public async Task<StoredLease?> GetLeaseAsync(string tailnet, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync(
            $"SELECT {LeaseColumns} FROM tailnet_leases l LEFT JOIN coordination_servers s ON s.id = l.owner WHERE l.tailnet = @t;",
            ReadLease, cancellationToken, ("@t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListLeasesAsync"/>
    public Task<IReadOnlyList<StoredLease>> ListLeasesAsync(CancellationToken cancellationToken) =>
        connections.QueryAsync($"SELECT {LeaseColumns} FROM tailnet_leases l LEFT JOIN coordination_servers s ON s.id = l.owner ORDER BY l.tailnet;",
            ReadLease, cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.ListServersAsync"/>
    public Task<IReadOnlyList<StoredServer>> ListServersAsync(CancellationToken cancellationToken) =>
        connections.QueryAsync("SELECT id, url, instance, started_at, now() - heartbeat_at, draining, load, stopped FROM coordination_servers ORDER BY id;",
            reader => new StoredServer(reader.GetString(0), reader.GetString(1), reader.GetString(2), ReadStamp(reader, 3),
                reader.GetFieldValue<TimeSpan>(4), reader.GetBoolean(5), reader.GetString(6), reader.GetBoolean(7)),
            cancellationToken);

    /// <inheritdoc cref="PostgresCoordinationStore.SetDrainingAsync"/>
    public async Task<bool> SetDrainingAsync(string serverId, bool draining, CancellationToken cancellationToken) =>
        await connections.ExecuteAsync("UPDATE coordination_servers SET draining = @d WHERE id = @id;", cancellationToken, ("@d", draining), ("@id", serverId))
            .ConfigureAwait(false) == 1;

    /// <inheritdoc cref="PostgresCoordinationStore.ReleaseQuarantineAsync"/>
    public async Task<bool> ReleaseQuarantineAsync(string tailnet, CancellationToken cancellationToken) =>
        // Not retried: run again after it took effect, it would find nothing quarantined.
        await connections.ExecuteAsync(Retry.Never,
            "UPDATE tailnet_leases SET quarantined = false, quarantine_reason = '', strike_at = NULL WHERE tailnet = @t AND quarantined;",
            cancellationToken, ("@t", tailnet)).ConfigureAwait(false) == 1;

    /// <inheritdoc cref="PostgresCoordinationStore.TryHoldRoleAsync"/>
    public async Task<bool> TryHoldRoleAsync(string role, string serverId, string instance, TimeSpan ttl, CancellationToken cancellationToken)
    {
        // A row comes back when the role was inserted, kept or taken over: the caller holds it now
        // (idempotent: the holder keeps it).
        var rows = await connections.QueryAsync(
            """
            INSERT INTO cluster_roles (role, owner, owner_instance, expires_at) VALUES (@r, @id, @i, now() + @ttl)
            ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, owner_instance = excluded.owner_instance, expires_at = excluded.expires_at
            WHERE cluster_roles.expires_at <= now() OR (cluster_roles.owner = excluded.owner AND cluster_roles.owner_instance = excluded.owner_instance)
            RETURNING true;
            """, reader => reader.GetBoolean(0), cancellationToken, ("@r", role), ("@id", serverId), ("@i", instance), ("@ttl", ttl)).ConfigureAwait(false);
        return rows.Count == 1;
    }

    /// <inheritdoc cref="PostgresCoordinationStore.GetSettingAsync"/>
    public async Task<string?> GetSettingAsync(string name, CancellationToken cancellationToken)
    {
        var list = await connections.QueryAsync("SELECT value FROM cluster_settings WHERE name = @n;", reader => reader.GetString(0), cancellationToken,
            ("@n", name)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc cref="PostgresCoordinationStore.SetSettingAsync"/>
    public Task SetSettingAsync(string name, string value, CancellationToken cancellationToken) =>
        connections.ExecuteAsync("INSERT INTO cluster_settings (name, value) VALUES (@n, @v) ON CONFLICT (name) DO UPDATE SET value = excluded.value;",
            cancellationToken, ("@n", name), ("@v", value));

    /// <summary>A candidate as the shared quarantine rule takes it (times in unix milliseconds).</summary>
    private static LeaseCandidate ReadCandidate(NpgsqlDataReader reader) =>
        new(reader.GetString(0), ReadStringOrNull(reader, 1), ReadStringOrNull(reader, 2), (ulong)reader.GetInt64(3),
            ReadStampOrNull(reader, 4)?.ToUnixTimeMilliseconds(), reader.GetBoolean(5), ReadStampOrNull(reader, 6)?.ToUnixTimeMilliseconds());

    private static StoredLease ReadLease(NpgsqlDataReader reader) =>
        new(reader.GetString(0), ReadStringOrNull(reader, 1), ReadStringOrNull(reader, 2), ReadStringOrNull(reader, 3), (ulong)reader.GetInt64(4),
            reader.GetFieldValue<TimeSpan>(5), (ulong)reader.GetInt64(6), (ulong)reader.GetInt64(7), reader.GetBoolean(8), reader.GetString(9),
            ReadStampOrNull(reader, 10), ReadStampOrNull(reader, 11), ReadStampOrNull(reader, 12))
        {
            OwnerHeartbeatAge = reader.IsDBNull(13) || reader.IsDBNull(1) ? null : reader.GetFieldValue<TimeSpan>(13),
        };
}
