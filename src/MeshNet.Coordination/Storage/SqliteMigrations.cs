namespace MeshNet.Coordination.Storage;

/// <summary>
/// The schema of <see cref="SqliteCoordinationStore"/> as an ordered list of migrations. A
/// migration is never edited once released: changes are new entries with the next version.
/// Times are unix milliseconds; tags and endpoints are space-separated (neither contains spaces).
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
        (4, """
            ALTER TABLE nodes ADD COLUMN online INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE nodes ADD COLUMN endpoints TEXT NOT NULL DEFAULT '';
            ALTER TABLE nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';
            ALTER TABLE nodes ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE nodes ADD COLUMN tags_revision INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE policies ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE tailnet_leases (
                tailnet TEXT PRIMARY KEY REFERENCES tailnets(name) ON DELETE CASCADE,
                owner TEXT,
                owner_instance TEXT,
                epoch INTEGER NOT NULL DEFAULT 0,
                expires_at INTEGER NOT NULL DEFAULT 0,
                revision INTEGER NOT NULL DEFAULT 0,
                log_floor INTEGER NOT NULL DEFAULT 0,
                granted_at INTEGER,
                renewed_at INTEGER,
                renewed_since_grant INTEGER NOT NULL DEFAULT 0,
                moved_at INTEGER,
                strike_at INTEGER,
                quarantined INTEGER NOT NULL DEFAULT 0,
                quarantine_reason TEXT NOT NULL DEFAULT ''
            );
            INSERT INTO tailnet_leases (tailnet) SELECT name FROM tailnets;
            CREATE TABLE tailnet_changes (
                tailnet TEXT NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                revision INTEGER NOT NULL,
                epoch INTEGER NOT NULL,
                kind TEXT NOT NULL,
                node_id INTEGER NOT NULL,
                detail TEXT NOT NULL,
                idempotency_key TEXT,
                committed_at INTEGER NOT NULL,
                PRIMARY KEY (tailnet, revision)
            );
            CREATE UNIQUE INDEX tailnet_changes_idempotency ON tailnet_changes(tailnet, idempotency_key) WHERE idempotency_key IS NOT NULL;
            CREATE INDEX tailnet_changes_committed ON tailnet_changes(committed_at);
            CREATE TABLE coordination_servers (
                id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                instance TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                heartbeat_at INTEGER NOT NULL,
                draining INTEGER NOT NULL DEFAULT 0,
                load TEXT NOT NULL DEFAULT '',
                stopped INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE cluster_roles (
                role TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                owner_instance TEXT NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE TABLE cluster_settings (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE TABLE coordination_incidents (
                id TEXT PRIMARY KEY,
                cause TEXT NOT NULL,
                subject TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                tailnets_total INTEGER NOT NULL,
                nodes_total INTEGER NOT NULL
            );
            CREATE INDEX coordination_incidents_started ON coordination_incidents(started_at);
            CREATE TABLE coordination_incident_tailnets (
                incident_id TEXT NOT NULL REFERENCES coordination_incidents(id) ON DELETE CASCADE,
                tailnet TEXT NOT NULL,
                server TEXT NOT NULL,
                epoch INTEGER NOT NULL,
                detect_ms INTEGER NOT NULL,
                nodes_affected INTEGER NOT NULL,
                nodes_resumed INTEGER NOT NULL,
                gap_node_seconds REAL NOT NULL,
                median_gap_ms INTEGER NOT NULL,
                max_gap_ms INTEGER NOT NULL,
                mitigate_ms INTEGER,
                refused_writes INTEGER NOT NULL,
                severity TEXT NOT NULL,
                closed INTEGER NOT NULL,
                PRIMARY KEY (incident_id, tailnet)
            );
            """),
    ];

    /// <summary>The version the code expects.</summary>
    public static int Latest => All[^1].Version;
}
