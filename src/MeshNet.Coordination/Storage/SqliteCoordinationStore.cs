using System.Data;
using System.Net;
using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Storage;

/// <summary>
/// The embedded store: one SQLite file in WAL mode, created with its directory on first start
/// (readable by the owner only, on Unix: it holds the server's secret key), with versioned
/// migrations recorded in <c>schema_version</c>. Writes that must be atomic run in
/// <c>BEGIN IMMEDIATE</c> transactions. Thread-safe; connections are pooled.
/// </summary>
public sealed partial class SqliteCoordinationStore : ICoordinationStore, IDisposable
{
    private const string NodeColumns = "id, tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created, last_seen, auth_key_id, user";
    private const string AuthKeyColumns = "id, tailnet, secret_hash, reusable, ephemeral, tags, created, expires, uses, revoked, description, user";

    private readonly string _connectionString;
    private readonly string? _filePath;

    /// <summary>Opens (on <see cref="InitializeAsync"/>) the database in the file <paramref name="databasePath"/>.</summary>
    public SqliteCoordinationStore(string databasePath)
        : this(new SqliteConnectionStringBuilder { DataSource = ValidatePath(databasePath) })
    {
    }

    private SqliteCoordinationStore(SqliteConnectionStringBuilder builder)
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
    }

    /// <summary>Opens the database described by a SQLite connection string (foreign keys are always on).</summary>
    public static SqliteCoordinationStore FromConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return new SqliteCoordinationStore(new SqliteConnectionStringBuilder(connectionString));
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
        return await ExecuteAsync(connection, null,
            "INSERT OR IGNORE INTO tailnets (name, domain, created, node_key_lifetime_ms) VALUES ($n, $d, $c, $l);", cancellationToken,
            ("$n", tailnet.Name), ("$d", tailnet.Domain), ("$c", tailnet.Created.ToUnixTimeMilliseconds()),
            ("$l", (long)tailnet.NodeKeyLifetime.TotalMilliseconds)).ConfigureAwait(false) == 1;
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
    public async Task<bool> DeleteTailnetAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, "DELETE FROM tailnets WHERE name = $n;", cancellationToken, ("$n", name)).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public async Task<bool> TryCreateAuthKeyAsync(StoredAuthKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null,
            $"""
            INSERT OR IGNORE INTO auth_keys ({AuthKeyColumns})
            SELECT $id, $t, $h, $r, $e, $tags, $c, $x, $u, $rv, $d, $user WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = $t);
            """, cancellationToken,
            ("$id", key.Id), ("$t", key.Tailnet), ("$h", key.SecretHash), ("$r", key.Reusable), ("$e", key.Ephemeral),
            ("$tags", string.Join(' ', key.Tags)), ("$c", key.Created.ToUnixTimeMilliseconds()), ("$x", key.Expires.ToUnixTimeMilliseconds()),
            ("$u", key.Uses), ("$rv", key.Revoked), ("$d", key.Description), ("$user", key.User)).ConfigureAwait(false) == 1;
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
    public async Task<bool> RevokeAuthKeyAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ExecuteAsync(connection, null, "UPDATE auth_keys SET revoked = 1 WHERE id = $id;", cancellationToken, ("$id", id)).ConfigureAwait(false) == 1;
    }

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
    public Task<IReadOnlyList<string>> ListNamesWithPrefixAsync(string tailnet, string prefix, CancellationToken cancellationToken) =>
        // Names are [a-z0-9-], all below '~' in binary collation: a range scan of the (tailnet, name) index.
        QueryAsync("SELECT name FROM nodes WHERE tailnet = $t AND name >= $p AND name < $p || '~';", reader => reader.GetString(0),
            cancellationToken, ("$t", tailnet), ("$p", prefix));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListEphemeralNodesIdleSinceAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE ephemeral = 1 AND COALESCE(last_seen, created) < $c ORDER BY COALESCE(last_seen, created) LIMIT $l;",
            ReadNode, cancellationToken, ("$c", cutoff.ToUnixTimeMilliseconds()), ("$l", limit));

    /// <inheritdoc />
    public Task<IReadOnlyList<StoredNode>> ListNodesWithKeyExpiryAsync(DateTimeOffset after, DateTimeOffset upTo, int limit, CancellationToken cancellationToken) =>
        QueryAsync($"SELECT {NodeColumns} FROM nodes WHERE key_expiry > $a AND key_expiry <= $u ORDER BY key_expiry LIMIT $l;",
            ReadNode, cancellationToken, ("$a", after.ToUnixTimeMilliseconds()), ("$u", upTo.ToUnixTimeMilliseconds()), ("$l", limit));

    /// <inheritdoc />
    public async Task<StoredPolicy?> GetPolicyAsync(string tailnet, CancellationToken cancellationToken)
    {
        var list = await QueryAsync("SELECT tailnet, text, version, updated FROM policies WHERE tailnet = $t;",
            reader => new StoredPolicy(reader.GetString(0), reader.GetString(1), (ulong)reader.GetInt64(2), FromUnix(reader.GetInt64(3))),
            cancellationToken, ("$t", tailnet)).ConfigureAwait(false);
        return list.Count == 0 ? null : list[0];
    }

    /// <inheritdoc />
    public async Task<StoredPolicy?> SavePolicyAsync(string tailnet, string text, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var version = await ScalarAsync(connection, null,
            """
            INSERT INTO policies (tailnet, text, version, updated)
            SELECT $t, $x, 1, $u WHERE EXISTS (SELECT 1 FROM tailnets WHERE name = $t)
            ON CONFLICT (tailnet) DO UPDATE SET text = excluded.text, version = policies.version + 1, updated = excluded.updated
            RETURNING version;
            """, cancellationToken, ("$t", tailnet), ("$x", text), ("$u", now.ToUnixTimeMilliseconds())).ConfigureAwait(false);
        return version is null ? null
            : new StoredPolicy(tailnet, text, (ulong)Convert.ToInt64(version, System.Globalization.CultureInfo.InvariantCulture), now);
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

    private static StoredTailnet ReadTailnet(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), FromUnix(reader.GetInt64(2)), TimeSpan.FromMilliseconds(reader.GetInt64(3)));

    private static StoredAuthKey ReadAuthKey(SqliteDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetBoolean(3), reader.GetBoolean(4),
            SplitTags(reader.GetString(5)), FromUnix(reader.GetInt64(6)), FromUnix(reader.GetInt64(7)), reader.GetInt32(8),
            reader.GetBoolean(9), reader.GetString(10), reader.GetString(11));

    private static StoredNode ReadNode(SqliteDataReader reader) =>
        new((ulong)reader.GetInt64(0), reader.GetString(1), (byte[])reader.GetValue(2), reader.GetString(3), reader.GetString(4),
            IPAddress.Parse(reader.GetString(5)), IPAddress.Parse(reader.GetString(6)), SplitTags(reader.GetString(7)), reader.GetBoolean(8),
            FromUnix(reader.GetInt64(9)), FromUnix(reader.GetInt64(10)), reader.IsDBNull(11) ? null : FromUnix(reader.GetInt64(11)),
            reader.IsDBNull(12) ? null : reader.GetString(12), reader.GetString(13));

    private static IReadOnlyList<string> SplitTags(string text) => text.Length == 0 ? [] : text.Split(' ');

    private static DateTimeOffset FromUnix(long milliseconds) => DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
}
