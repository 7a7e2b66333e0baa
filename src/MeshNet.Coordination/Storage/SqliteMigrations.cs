namespace MeshNet.Coordination.Storage;

/// <summary>
/// The schema of <see cref="SqliteCoordinationStore"/> as an ordered list of migrations. A
/// migration is never edited once released: changes are new entries with the next version.
/// Times are unix milliseconds; tags are space-separated (tags contain no spaces).
/// </summary>
internal static class SqliteMigrations
{
    public static IReadOnlyList<(int Version, string Sql)> All { get; } =
    [
        (1, """
            CREATE TABLE server_key (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                secret BLOB NOT NULL,
                created INTEGER NOT NULL
            );
            CREATE TABLE tailnets (
                name TEXT PRIMARY KEY,
                domain TEXT NOT NULL,
                created INTEGER NOT NULL,
                node_key_lifetime_ms INTEGER NOT NULL
            );
            CREATE TABLE auth_keys (
                id TEXT PRIMARY KEY,
                tailnet TEXT NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                secret_hash BLOB NOT NULL,
                reusable INTEGER NOT NULL,
                ephemeral INTEGER NOT NULL,
                tags TEXT NOT NULL,
                created INTEGER NOT NULL,
                expires INTEGER NOT NULL,
                uses INTEGER NOT NULL DEFAULT 0,
                revoked INTEGER NOT NULL DEFAULT 0,
                description TEXT NOT NULL
            );
            CREATE INDEX auth_keys_by_tailnet ON auth_keys(tailnet, created);
            CREATE TABLE nodes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                tailnet TEXT NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                node_key BLOB NOT NULL UNIQUE,
                name TEXT NOT NULL,
                hostname TEXT NOT NULL,
                ipv4 TEXT NOT NULL,
                ipv6 TEXT NOT NULL,
                tags TEXT NOT NULL,
                ephemeral INTEGER NOT NULL,
                key_expiry INTEGER NOT NULL,
                created INTEGER NOT NULL,
                last_seen INTEGER,
                auth_key_id TEXT,
                UNIQUE (tailnet, name),
                UNIQUE (tailnet, ipv4),
                UNIQUE (tailnet, ipv6)
            );
            """),
        (2, """
            CREATE INDEX nodes_ephemeral_idle ON nodes(COALESCE(last_seen, created)) WHERE ephemeral = 1;
            CREATE INDEX nodes_key_expiry ON nodes(key_expiry);
            """),
        (3, """
            ALTER TABLE auth_keys ADD COLUMN user TEXT NOT NULL DEFAULT '';
            ALTER TABLE nodes ADD COLUMN user TEXT NOT NULL DEFAULT '';
            CREATE TABLE policies (
                tailnet TEXT PRIMARY KEY REFERENCES tailnets(name) ON DELETE CASCADE,
                text TEXT NOT NULL,
                version INTEGER NOT NULL,
                updated INTEGER NOT NULL
            );
            """),
    ];

    /// <summary>The version the code expects.</summary>
    public static int Latest => All[^1].Version;
}
