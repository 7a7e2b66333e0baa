using Microsoft.Data.Sqlite;

namespace CustomStores;

/// <summary>
/// One SQLite file holding the nodes of this process: table <c>nodes</c>, one row per node
/// (its name), with the identity columns (written by <see cref="SqliteStateStore"/>) and the
/// netmap columns (written by <see cref="SqliteNetmapStore"/>).
/// </summary>
/// <remarks>
/// The rows hold the nodes' private keys: the file is created with mode 0600 (owner only) before
/// SQLite opens it, and SQLite gives its journal files the database's mode. Every operation
/// opens its own connection (Microsoft.Data.Sqlite pools them), so the stores are thread-safe.
/// </remarks>
internal sealed class SqliteNodeDatabase
{
    private SqliteNodeDatabase(string path)
    {
        Path = path;
        ConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWrite, // never creates the file: Open did, with the right mode
            DefaultTimeout = 10,
        }.ToString();
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    private string ConnectionString { get; }

    /// <summary>Opens (creating it, owner-only, if needed) the database at <paramref name="path"/>.</summary>
    public static async Task<SqliteNodeDatabase> OpenAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            try
            {
                using (new FileStream(path, options))
                {
                }
            }
            catch (IOException) when (File.Exists(path))
            {
                // Created by someone else in between: use it.
            }
        }
        var database = new SqliteNodeDatabase(path);
        await using var connection = await database.ConnectAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS nodes (
                name                  TEXT PRIMARY KEY,
                private_key           BLOB,     -- 32 bytes: the node's WireGuard private key
                node_id               INTEGER,  -- null until registered
                tailnet               TEXT,
                addresses             TEXT,     -- space-separated
                control_url           TEXT,
                listen_port           INTEGER NOT NULL DEFAULT 0,
                netmap                BLOB,     -- the bytes of MeshCachedNetmap.Serialize, as they are
                netmap_set_aside      BLOB,     -- the last netmap that could not be used, kept for inspection
                netmap_set_aside_why  TEXT,
                updated               TEXT NOT NULL
            );
            """;
        await command.ExecuteNonQueryAsync(cancellationToken);
        return database;
    }

    /// <summary>An open connection; the caller disposes it.</summary>
    public async Task<SqliteConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
