using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

public sealed partial class SqliteCoordinationStore
{
    private const string LeaseColumns =
        "l.tailnet, l.owner, l.owner_instance, s.url, l.epoch, l.expires_at, l.revision, l.log_floor, l.quarantined, l.quarantine_reason, " +
        "l.granted_at, l.renewed_at, l.moved_at, s.heartbeat_at";

    /// <inheritdoc />
    public async Task RegisterServerAsync(string serverId, string url, string instance, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        long now = NowMs();
        await ExecuteAsync(connection, null,
            """
            INSERT INTO coordination_servers (id, url, instance, started_at, heartbeat_at) VALUES ($id, $u, $i, $now, $now)
            ON CONFLICT (id) DO UPDATE SET url = excluded.url, instance = excluded.instance, started_at = excluded.started_at,
                heartbeat_at = excluded.heartbeat_at, draining = 0, stopped = 0, load = '';
            """, cancellationToken, ("$id", serverId), ("$u", url), ("$i", instance), ("$now", now)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<bool> DeregisterServerAsync(string serverId, string instance, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, "UPDATE coordination_servers SET stopped = 1 WHERE id = $id AND instance = $i;", cancellationToken,
            ("$id", serverId), ("$i", instance)).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<LeaseRenewal> RenewAsync(string serverId, string instance, TimeSpan ttl, string load, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long now = NowMs();
        if (await ExecuteAsync(connection, transaction, "UPDATE coordination_servers SET heartbeat_at = $now, load = $l WHERE id = $id AND instance = $i;",
            cancellationToken, ("$now", now), ("$l", load), ("$id", serverId), ("$i", instance)).ConfigureAwait(false) != 1)
        {
            return new LeaseRenewal([], Registered: false);
        }
        var held = await QueryAsync(connection, transaction,
            """
            UPDATE tailnet_leases SET expires_at = $x, renewed_at = $now, renewed_since_grant = 1
            WHERE owner = $id AND owner_instance = $i RETURNING tailnet, epoch;
            """, reader => new HeldLease(reader.GetString(0), (ulong)reader.GetInt64(1)), cancellationToken,
            ("$x", now + (long)ttl.TotalMilliseconds), ("$now", now), ("$id", serverId), ("$i", instance)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new LeaseRenewal(held, Registered: true);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<LeaseGrant>> ClaimAsync(LeaseClaim claim, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(claim);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long now = NowMs();
        var standing = await QueryAsync(connection, transaction, "SELECT draining FROM coordination_servers WHERE id = $id AND instance = $i;",
            reader => reader.GetBoolean(0), cancellationToken, ("$id", claim.ServerId), ("$i", claim.Instance)).ConfigureAwait(false);
        if (standing.Count == 0 || standing[0])
        {
            return []; // not registered (or replaced), or draining
        }
        bool stickyOver = now - Volatile.Read(ref _openedAt) >= (long)claim.StickyPeriod.TotalMilliseconds;
        var candidates = await QueryAsync(connection, transaction,
            """
            SELECT tailnet, owner, owner_instance, epoch, renewed_at, renewed_since_grant, strike_at FROM tailnet_leases
            WHERE quarantined = 0 AND ($only IS NULL OR tailnet = $only)
              AND NOT (owner IS NOT NULL AND owner = $id AND owner_instance IS NOT NULL AND owner_instance = $i)
              AND ((owner = $id) OR (expires_at <= $now AND (owner IS NULL OR $sticky)))
            ORDER BY expires_at LIMIT $l;
            """, ReadCandidate, cancellationToken, ("$only", claim.Tailnet), ("$id", claim.ServerId), ("$i", claim.Instance), ("$now", now),
            ("$sticky", stickyOver), ("$l", claim.Limit)).ConfigureAwait(false);
        var grants = new List<LeaseGrant>();
        foreach (var candidate in candidates)
        {
            var decision = LeaseRules.Decide(candidate, now, claim.QuarantineWindow);
            if (decision.Quarantine)
            {
                await ExecuteAsync(connection, transaction,
                    "UPDATE tailnet_leases SET quarantined = 1, quarantine_reason = $r, owner = NULL, owner_instance = NULL, strike_at = $now WHERE tailnet = $t;",
                    cancellationToken, ("$r", decision.Reason), ("$now", now), ("$t", candidate.Tailnet)).ConfigureAwait(false);
                grants.Add(candidate.Grant(candidate.Epoch, now, quarantined: true));
                continue;
            }
            await ExecuteAsync(connection, transaction,
                """
                UPDATE tailnet_leases SET owner = $id, owner_instance = $i, epoch = epoch + 1, expires_at = $x, granted_at = $now, renewed_at = $now,
                    renewed_since_grant = 0, strike_at = $strike
                WHERE tailnet = $t;
                """, cancellationToken, ("$id", claim.ServerId), ("$i", claim.Instance), ("$x", now + (long)claim.Ttl.TotalMilliseconds), ("$now", now),
                ("$strike", decision.StrikeAt), ("$t", candidate.Tailnet)).ConfigureAwait(false);
            grants.Add(candidate.Grant(candidate.Epoch + 1, now, quarantined: false));
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return grants;
    }

    /// <inheritdoc />
    public async Task<LeaseGrant?> HandOverAsync(string tailnet, string fromServer, ulong expectedEpoch, string toServer, string toInstance, TimeSpan ttl,
        CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        long now = NowMs();
        var before = await QueryAsync(connection, transaction,
            "SELECT owner_instance, renewed_at FROM tailnet_leases WHERE tailnet = $t AND owner = $f AND epoch = $e AND quarantined = 0;",
            reader => (Instance: reader.IsDBNull(0) ? null : reader.GetString(0), Renewed: reader.IsDBNull(1) ? (long?)null : reader.GetInt64(1)),
            cancellationToken, ("$t", tailnet), ("$f", fromServer), ("$e", (long)expectedEpoch)).ConfigureAwait(false);
        if (before.Count == 0)
        {
            return null;
        }
        await ExecuteAsync(connection, transaction,
            """
            UPDATE tailnet_leases SET owner = $to, owner_instance = $ti, epoch = epoch + 1, expires_at = $x, granted_at = $now, renewed_at = $now,
                renewed_since_grant = 1, moved_at = $now
            WHERE tailnet = $t;
            """, cancellationToken, ("$to", toServer), ("$ti", toInstance), ("$x", now + (long)ttl.TotalMilliseconds), ("$now", now), ("$t", tailnet))
            .ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new LeaseGrant(tailnet, expectedEpoch + 1, fromServer, before[0].Instance, before[0].Renewed is { } renewed ? FromUnix(renewed) : null, FromUnix(now));
    }

    /// <inheritdoc />
    public async Task<bool> ReleaseAsync(string tailnet, string serverId, ulong epoch, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null,
            "UPDATE tailnet_leases SET owner = NULL, owner_instance = NULL, expires_at = 0 WHERE tailnet = $t AND owner = $id AND epoch = $e;",
            cancellationToken, ("$t", tailnet), ("$id", serverId), ("$e", (long)epoch)).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<StoredLease?> GetLeaseAsync(string tailnet, CancellationToken cancellationToken)
    {
        long now = NowMs();
        var list = await QueryAsync($"SELECT {LeaseColumns} FROM tailnet_leases l LEFT JOIN coordination_servers s ON s.id = l.owner WHERE l.tailnet = $t;",
            reader => ReadLease(reader, now), cancellationToken, ("$t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredLease>> ListLeasesAsync(CancellationToken cancellationToken)
    {
        long now = NowMs();
        return QueryAsync($"SELECT {LeaseColumns} FROM tailnet_leases l LEFT JOIN coordination_servers s ON s.id = l.owner ORDER BY l.tailnet;",
            reader => ReadLease(reader, now), cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredServer>> ListServersAsync(CancellationToken cancellationToken)
    {
        long now = NowMs();
        return QueryAsync("SELECT id, url, instance, started_at, heartbeat_at, draining, load, stopped FROM coordination_servers ORDER BY id;",
            reader => new StoredServer(reader.GetString(0), reader.GetString(1), reader.GetString(2), FromUnix(reader.GetInt64(3)),
                TimeSpan.FromMilliseconds(now - reader.GetInt64(4)), reader.GetBoolean(5), reader.GetString(6), reader.GetBoolean(7)),
            cancellationToken);
    }

    /// <inheritdoc />
    public async Task<bool> SetDrainingAsync(string serverId, bool draining, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, "UPDATE coordination_servers SET draining = $d WHERE id = $id;", cancellationToken,
            ("$d", draining), ("$id", serverId)).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<bool> ReleaseQuarantineAsync(string tailnet, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null,
            "UPDATE tailnet_leases SET quarantined = 0, quarantine_reason = '', strike_at = NULL WHERE tailnet = $t AND quarantined = 1;",
            cancellationToken, ("$t", tailnet)).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<bool> TryHoldRoleAsync(string role, string serverId, string instance, TimeSpan ttl, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        long now = NowMs();
        await ExecuteAsync(connection, null,
            """
            INSERT INTO cluster_roles (role, owner, owner_instance, expires_at) VALUES ($r, $id, $i, $x)
            ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, owner_instance = excluded.owner_instance, expires_at = excluded.expires_at
            WHERE cluster_roles.expires_at <= $now OR (cluster_roles.owner = excluded.owner AND cluster_roles.owner_instance = excluded.owner_instance);
            """, cancellationToken, ("$r", role), ("$id", serverId), ("$i", instance), ("$x", now + (long)ttl.TotalMilliseconds), ("$now", now))
            .ConfigureAwait(false);
        var holder = await QueryAsync(connection, null, "SELECT owner, owner_instance FROM cluster_roles WHERE role = $r;",
            reader => (reader.GetString(0), reader.GetString(1)), cancellationToken, ("$r", role)).ConfigureAwait(false);
        return holder.Count == 1 && holder[0] == (serverId, instance);
    }

    /// <inheritdoc />
    public async Task<string?> GetSettingAsync(string name, CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT value FROM cluster_settings WHERE name = $n;", reader => reader.GetString(0), cancellationToken, ("$n", name))
            .ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public async Task SetSettingAsync(string name, string value, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null,
            "INSERT INTO cluster_settings (name, value) VALUES ($n, $v) ON CONFLICT (name) DO UPDATE SET value = excluded.value;",
            cancellationToken, ("$n", name), ("$v", value)).ConfigureAwait(false);
    }

    private static LeaseCandidate ReadCandidate(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
            (ulong)reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.GetBoolean(5), reader.IsDBNull(6) ? null : reader.GetInt64(6));

    private static StoredLease ReadLease(SqliteDataReader reader, long now) =>
        new(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
            reader.IsDBNull(3) ? null : reader.GetString(3), (ulong)reader.GetInt64(4), TimeSpan.FromMilliseconds(reader.GetInt64(5) - now),
            (ulong)reader.GetInt64(6), (ulong)reader.GetInt64(7), reader.GetBoolean(8), reader.GetString(9),
            reader.IsDBNull(10) ? null : FromUnix(reader.GetInt64(10)), reader.IsDBNull(11) ? null : FromUnix(reader.GetInt64(11)),
            reader.IsDBNull(12) ? null : FromUnix(reader.GetInt64(12)))
        {
            OwnerHeartbeatAge = reader.IsDBNull(13) || reader.IsDBNull(1) ? null : TimeSpan.FromMilliseconds(now - reader.GetInt64(13)),
        };
}
