using System.Net;
using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

/// <summary>
/// The embedded store: one SQLite file in WAL mode, created with its directory on first start
/// (readable by the owner only, on Unix: it holds the server's secret key), with versioned
/// migrations recorded in <c>schema_version</c>. Writes that must be atomic run in
/// <c>BEGIN IMMEDIATE</c> transactions. Thread-safe; connections are pooled. The database's
/// clock (lease expiry, change-log times) is the <see cref="TimeProvider"/> given at
/// construction: one server uses the file, so its clock is the only one.
/// </summary>
public sealed partial class SqliteCoordinationStore : ICoordinationStore, ICoordinationLeaseStore, IDisposable
{
    private const string NodeColumns =
        "id, tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user, " +
        "online, endpoints, instance, revision, tags_revision";
    private const string AuthKeyColumns = "id, tailnet, secret_hash, reusable, ephemeral, tags, created, expires, uses, revoked, description, user";

    private readonly string _connectionString;
    private readonly string? _filePath;
    private readonly TimeProvider _time;
    private long _openedAt;

    /// <summary>Opens (on <see cref="InitializeAsync"/>) the database in the file <paramref name="databasePath"/>.</summary>
    /// <param name="databasePath">The database file.</param>
    /// <param name="time">The database's clock; default the system clock.</param>
    public SqliteCoordinationStore(string databasePath, TimeProvider? time = null)
        : this(new SqliteConnectionStringBuilder { DataSource = ValidatePath(databasePath) }, time)
    {
    }

    private SqliteCoordinationStore(SqliteConnectionStringBuilder builder, TimeProvider? time)
    {
        builder.ForeignKeys = true;
        builder.Pooling = true;
        if (builder.Mode is SqliteOpenMode.ReadOnly)
        {
            throw new ArgumentException("The coordination store needs a writable database.", nameof(builder));
        }
        _connectionString = builder.ToString();
        bool memory = builder.Mode == SqliteOpenMode.Memory || builder.DataSource is ":memory:" or "" ||
            builder.DataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase);
        _filePath = memory ? null : Path.GetFullPath(builder.DataSource);
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Opens the database described by a SQLite connection string (foreign keys are always on).</summary>
    /// <param name="connectionString">The connection string.</param>
    /// <param name="time">The database's clock; default the system clock.</param>
    public static SqliteCoordinationStore FromConnectionString(string connectionString, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return new SqliteCoordinationStore(new SqliteConnectionStringBuilder(connectionString), time);
    }

    /// <inheritdoc />
    public async Task<int> InitializeAsync(CancellationToken cancellationToken)
    {
        CreateFileIfMissing();
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null, "PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null,
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL);", cancellationToken).ConfigureAwait(false);
        int version = 0;
        foreach (var (target, sql) in SqliteMigrations.All)
        {
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            version = Convert.ToInt32(await ScalarAsync(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM schema_version;", cancellationToken).ConfigureAwait(false),
                System.Globalization.CultureInfo.InvariantCulture);
            if (version > SqliteMigrations.Latest)
            {
                throw new StoreSchemaException($"The database schema is version {version}; this version of the service knows up to {SqliteMigrations.Latest}.");
            }
            if (version >= target)
            {
                continue;
            }
            try
            {
                await ExecuteAsync(connection, transaction, sql, cancellationToken).ConfigureAwait(false);
                await ExecuteAsync(connection, transaction, "INSERT INTO schema_version (version, applied) VALUES ($v, $t);", cancellationToken,
                    ("$v", target), ("$t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                version = target;
            }
            catch (SqliteException exception)
            {
                throw new StoreSchemaException($"Schema migration {target} failed: {exception.Message}", exception);
            }
        }
        Interlocked.CompareExchange(ref _openedAt, NowMs(), 0);
        return version;
    }

    /// <inheritdoc />
    public async Task<byte[]> GetOrAddServerKeyAsync(ReadOnlyMemory<byte> candidate, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null, "INSERT OR IGNORE INTO server_key (id, secret, created) VALUES (1, $s, $c);", cancellationToken,
            ("$s", candidate.ToArray()), ("$c", now.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        return (byte[])(await ScalarAsync(connection, null, "SELECT secret FROM server_key WHERE id = 1;", cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async Task<bool> TryCreateTailnetAsync(StoredTailnet tailnet, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tailnet);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (await ExecuteAsync(connection, transaction,
            "INSERT OR IGNORE INTO tailnets (name, domain, created, node_key_lifetime_ms) VALUES ($n, $d, $c, $l);", cancellationToken,
            ("$n", tailnet.Name), ("$d", tailnet.Domain), ("$c", tailnet.Created.ToUnixTimeMilliseconds()),
            ("$l", (long)tailnet.NodeKeyLifetime.TotalMilliseconds)).ConfigureAwait(false) != 1)
        {
            return false;
        }
        await ExecuteAsync(connection, transaction, "INSERT INTO tailnet_leases (tailnet) VALUES ($n);", cancellationToken, ("$n", tailnet.Name)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <inheritdoc />
    public async Task<StoredTailnet?> GetTailnetAsync(string name, CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT name, domain, created, node_key_lifetime_ms FROM tailnets WHERE name = $n;", ReadTailnet, cancellationToken, ("$n", name)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredTailnet>> ListTailnetsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT name, domain, created, node_key_lifetime_ms FROM tailnets ORDER BY name;", ReadTailnet, cancellationToken);

    /// <inheritdoc />
    public async Task<FencedResult<bool>> DeleteTailnetAsync(TailnetFence fence, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var revision = await AdvanceAsync(connection, transaction, fence, cancellationToken).ConfigureAwait(false);
        if (revision is null)
        {
            return FencedResult<bool>.Fenced(false);
        }
        int deleted = await ExecuteAsync(connection, transaction, "DELETE FROM tailnets WHERE name = $n;", cancellationToken, ("$n", fence.Tailnet)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new(FencedStatus.Committed, revision.Value, deleted == 1);
    }

    /// <inheritdoc />
    public async Task<StoredTailnetState?> LoadTailnetAsync(string tailnet, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        // A deferred transaction reads one snapshot of the WAL database.
        await using var transaction = connection.BeginTransaction(deferred: true);
        var tailnets = await QueryAsync(connection, transaction, "SELECT name, domain, created, node_key_lifetime_ms FROM tailnets WHERE name = $n;",
            ReadTailnet, cancellationToken, ("$n", tailnet)).ConfigureAwait(false);
        if (tailnets.Count == 0)
        {
            return null;
        }
        var head = await QueryAsync(connection, transaction, "SELECT revision, log_floor FROM tailnet_leases WHERE tailnet = $n;",
            reader => ((ulong)reader.GetInt64(0), (ulong)reader.GetInt64(1)), cancellationToken, ("$n", tailnet)).ConfigureAwait(false);
        var (revision, floor) = head.Count == 0 ? (0UL, 0UL) : head[0];
        var nodes = await QueryAsync(connection, transaction, $"SELECT {NodeColumns} FROM nodes WHERE tailnet = $t ORDER BY id;", ReadNode,
            cancellationToken, ("$t", tailnet)).ConfigureAwait(false);
        var policies = await QueryAsync(connection, transaction, "SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = $t;",
            ReadPolicy, cancellationToken, ("$t", tailnet)).ConfigureAwait(false);
        var removals = await QueryAsync(connection, transaction,
            "SELECT node_id, revision FROM tailnet_changes WHERE tailnet = $t AND kind = $k AND revision > $f ORDER BY revision;",
            reader => ((ulong)reader.GetInt64(0), (ulong)reader.GetInt64(1)), cancellationToken,
            ("$t", tailnet), ("$k", ChangeKinds.NodeRemoved), ("$f", (long)floor)).ConfigureAwait(false);
        return new StoredTailnetState(tailnets[0], nodes, policies.Count == 0 ? null : policies[0], removals, revision, floor);
    }

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
                INSERT OR IGNORE INTO auth_keys ({AuthKeyColumns})
                SELECT $id, $t, $h, $r, $e, $tags, $c, $x, $u, $rv, $d, $user WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = $t);
                """, cancellationToken,
                ("$id", key.Id), ("$t", key.Tailnet), ("$h", key.SecretHash), ("$r", key.Reusable), ("$e", key.Ephemeral),
                ("$tags", string.Join(' ', key.Tags)), ("$c", key.Created.ToUnixTimeMilliseconds()), ("$x", key.Expires.ToUnixTimeMilliseconds()),
                ("$u", key.Uses), ("$rv", key.Revoked), ("$d", key.Description), ("$user", key.User)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(created, created, 0, key.Id);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<StoredAuthKey?> GetAuthKeyAsync(string id, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE id = $id;", ReadAuthKey, cancellationToken, ("$id", id)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredAuthKey>> ListAuthKeysAsync(string tailnet, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {AuthKeyColumns} FROM auth_keys WHERE tailnet = $t ORDER BY created, id;", ReadAuthKey, cancellationToken, ("$t", tailnet));

    /// <inheritdoc />
    public Task<FencedResult<bool>> RevokeAuthKeyAsync(TailnetFence fence, string id, CancellationToken cancellationToken) =>
        FencedAsync(fence, ChangeKinds.AuthKeyRevoked, async (connection, transaction, revision) =>
        {
            bool revoked = await ExecuteAsync(connection, transaction, "UPDATE auth_keys SET revoked = 1 WHERE id = $id AND tailnet = $t;", cancellationToken,
                ("$id", id), ("$t", fence.Tailnet)).ConfigureAwait(false) == 1;
            return new WriteStep<bool>(revoked, revoked, 0, id);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<StoredNode?> GetNodeByKeyAsync(ReadOnlyMemory<byte> nodeKey, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE node_key = $k;", ReadNode, cancellationToken, ("$k", nodeKey.ToArray())).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public async Task<StoredNode?> GetNodeAsync(ulong id, CancellationToken cancellationToken)
    {
        var list = await QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE id = $id;", ReadNode, cancellationToken, ("$id", (long)id)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesAsync(string tailnet, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE tailnet = $t ORDER BY id;", ReadNode, cancellationToken, ("$t", tailnet));

    /// <inheritdoc />
    public async Task<long> CountNodesAsync(CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT COUNT(*) FROM nodes;", reader => reader.GetInt64(0), cancellationToken).ConfigureAwait(false);
        return list[0];
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken) =>
        // Names are [a-z0-9-], all below '~' in binary collation: a range scan of the (tailnet, name) index.
        QueryAsync("SELECT name FROM nodes WHERE tailnet = $t AND name >= $p AND name < $p || '~';", reader => reader.GetString(0),
            cancellationToken, ("$t", tailnet), ("$p", prefix));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE ephemeral = 1 AND online = 0 AND COALESCE(last_seen, created) < $c ORDER BY COALESCE(last_seen, created) LIMIT $l;",
            ReadNode, cancellationToken, ("$c", cutoff.ToUnixTimeMilliseconds()), ("$l", limit));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE key_expiry > $a AND key_expiry <= $u ORDER BY key_expiry LIMIT $l;",
            ReadNode, cancellationToken, ("$a", after.ToUnixTimeMilliseconds()), ("$u", upTo.ToUnixTimeMilliseconds()), ("$l", limit));

    /// <inheritdoc />
    public async Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT tailnet, text, version, updated, revision FROM policies WHERE tailnet = $t;", ReadPolicy,
            cancellationToken, ("$t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public Task<FencedResult<StoredPolicy?>> SavePolicyAsync(TailnetFence fence, string text, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(text);
        return FencedAsync<StoredPolicy?>(fence, ChangeKinds.PolicySaved, async (connection, transaction, revision) =>
        {
            var version = await ScalarAsync(connection, transaction,
                """
                INSERT INTO policies (tailnet, text, version, updated, revision)
                SELECT $t, $x, 1, $u, $r WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = $t)
                ON CONFLICT (tailnet) DO UPDATE SET text = excluded.text, version = policies.version + 1, updated = excluded.updated,
                    revision = excluded.revision
                RETURNING version;
                """, cancellationToken, ("$t", fence.Tailnet), ("$x", text), ("$u", now.ToUnixTimeMilliseconds()), ("$r", (long)revision)).ConfigureAwait(false);
            if (version is null)
            {
                return new WriteStep<StoredPolicy?>(false, null);
            }
            ulong saved = (ulong)Convert.ToInt64(version, System.Globalization.CultureInfo.InvariantCulture);
            var policy = new StoredPolicy(fence.Tailnet, text, saved, now) { Revision = revision };
            return new WriteStep<StoredPolicy?>(true, policy, 0, saved.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }, cancellationToken);
    }

    /// <summary>Releases pooled connections so the database file can be moved or deleted.</summary>
    public void Dispose()
    {
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
    }

    private static string ValidatePath(string databasePath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        return databasePath;
    }

    private void CreateFileIfMissing()
    {
        if (_filePath is null || File.Exists(_filePath))
        {
            return;
        }
        var directory = Path.GetDirectoryName(_filePath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
        // An empty file is an empty SQLite database; creating it ourselves sets its mode (the
        // WAL and shared-memory files inherit it).
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        try
        {
            using var _ = new FileStream(_filePath, options);
        }
        catch (IOException) when (File.Exists(_filePath))
        {
            // Created concurrently.
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static StoredTailnet ReadTailnet(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), FromUnix(reader.GetInt64(2)), TimeSpan.FromMilliseconds(reader.GetInt64(3)));

    private static StoredPolicy ReadPolicy(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), (ulong)reader.GetInt64(2), FromUnix(reader.GetInt64(3))) { Revision = (ulong)reader.GetInt64(4) };

    private static StoredAuthKey ReadAuthKey(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetBoolean(3), reader.GetBoolean(4),
            SplitWords(reader.GetString(5)), FromUnix(reader.GetInt64(6)), FromUnix(reader.GetInt64(7)), reader.GetInt32(8),
            reader.GetBoolean(9), reader.GetString(10), reader.GetString(11));

    private static StoredNode ReadNode(SqliteDataReader reader) =>
        new((ulong)reader.GetInt64(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetString(3), reader.GetString(4),
            IPAddress.Parse(reader.GetString(5)), IPAddress.Parse(reader.GetString(6)), SplitWords(reader.GetString(7)), reader.GetBoolean(8),
            FromUnix(reader.GetInt64(9)), FromUnix(reader.GetInt64(10)), reader.IsDBNull(11) ? null : FromUnix(reader.GetInt64(11)),
            reader.IsDBNull(12) ? null : reader.GetString(12), reader.GetString(13))
        {
            Online = reader.GetBoolean(14),
            Endpoints = SplitWords(reader.GetString(15)),
            Instance = reader.GetString(16),
            Revision = (ulong)reader.GetInt64(17),
            TagsRevision = (ulong)reader.GetInt64(18),
        };

    private static IReadOnlyList<string> SplitWords(string text) => text.Length == 0 ? [] : text.Split(' ');

    private static DateTimeOffset FromUnix(long milliseconds) => DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
}
