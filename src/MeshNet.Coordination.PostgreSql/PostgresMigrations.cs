namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The schema of <see cref="PostgresCoordinationStore"/> as an ordered list of migrations,
/// recorded in <c>schema_version</c>. A migration is never edited once released: changes are new
/// entries with the next version. Version 1 is the schema of the SQLite store's version 4
/// (leases, the change log, servers, roles, settings, incidents) in PostgreSQL's types.
/// </summary>
/// <remarks>
/// Types: <c>bytea</c> for keys and secrets, <c>timestamptz</c> for instants (written at
/// millisecond precision, as the SQLite store keeps them), <c>bigint</c> milliseconds for
/// durations, <c>bigint</c> for ids, revisions and epochs, <c>text[]</c> for tags and endpoints,
/// <c>inet</c> for addresses. Names and ids are <c>COLLATE "C"</c>: byte order, as SQLite's
/// binary collation sorts them, whatever the database's locale (and prefix scans of names are
/// range scans of their index).
/// </remarks>
internal static class PostgresMigrations
{
    /// <summary>The key of the transaction-scoped advisory lock that serializes migrations of one database.</summary>
    public const long LockKey = 0x4D65_7368_4E65_7401; // "MeshNet" + 1

    /// <summary>Creates the version table (under the migration lock, so that concurrent starts do not race on it).</summary>
    public const string VersionTable =
        "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now());";

    public static IReadOnlyList<(int Version, string Sql)> All { get; } =
    [
        (1, """
            CREATE TABLE server_key (
                id integer PRIMARY KEY CHECK (id = 1),
                secret bytea NOT NULL,
                created timestamptz NOT NULL
            );
            CREATE TABLE tailnets (
                name text COLLATE "C" PRIMARY KEY,
                domain text NOT NULL,
                created timestamptz NOT NULL,
                node_key_lifetime_ms bigint NOT NULL
            );
            CREATE TABLE auth_keys (
                id text COLLATE "C" PRIMARY KEY,
                tailnet text COLLATE "C" NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                secret_hash bytea NOT NULL,
                reusable boolean NOT NULL,
                ephemeral boolean NOT NULL,
                tags text[] NOT NULL,
                created timestamptz NOT NULL,
                expires timestamptz NOT NULL,
                uses integer NOT NULL DEFAULT 0,
                revoked boolean NOT NULL DEFAULT false,
                description text NOT NULL,
                user_name text NOT NULL DEFAULT ''
            );
            CREATE INDEX auth_keys_by_tailnet ON auth_keys (tailnet, created);
            CREATE TABLE nodes (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tailnet text COLLATE "C" NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                node_key bytea NOT NULL,
                name text COLLATE "C" NOT NULL,
                hostname text NOT NULL,
                ipv4 inet NOT NULL,
                ipv6 inet NOT NULL,
                tags text[] NOT NULL,
                ephemeral boolean NOT NULL,
                key_expiry timestamptz NOT NULL,
                created timestamptz NOT NULL,
                last_seen timestamptz,
                auth_key_id text COLLATE "C",
                user_name text NOT NULL DEFAULT '',
                online boolean NOT NULL DEFAULT false,
                endpoints text[] NOT NULL DEFAULT '{}',
                instance text NOT NULL DEFAULT '',
                revision bigint NOT NULL DEFAULT 0,
                tags_revision bigint NOT NULL DEFAULT 0,
                CONSTRAINT nodes_node_key_key UNIQUE (node_key),
                CONSTRAINT nodes_tailnet_name_key UNIQUE (tailnet, name),
                CONSTRAINT nodes_tailnet_ipv4_key UNIQUE (tailnet, ipv4),
                CONSTRAINT nodes_tailnet_ipv6_key UNIQUE (tailnet, ipv6)
            );
            CREATE INDEX nodes_ephemeral_idle ON nodes ((COALESCE(last_seen, created))) WHERE ephemeral;
            CREATE INDEX nodes_key_expiry ON nodes (key_expiry);
            CREATE TABLE policies (
                tailnet text COLLATE "C" PRIMARY KEY REFERENCES tailnets(name) ON DELETE CASCADE,
                text text NOT NULL,
                version bigint NOT NULL,
                updated timestamptz NOT NULL,
                revision bigint NOT NULL DEFAULT 0
            );
            CREATE TABLE tailnet_leases (
                tailnet text COLLATE "C" PRIMARY KEY REFERENCES tailnets(name) ON DELETE CASCADE,
                owner text COLLATE "C",
                owner_instance text COLLATE "C",
                epoch bigint NOT NULL DEFAULT 0,
                expires_at timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00',
                revision bigint NOT NULL DEFAULT 0,
                log_floor bigint NOT NULL DEFAULT 0,
                granted_at timestamptz,
                renewed_at timestamptz,
                renewed_since_grant boolean NOT NULL DEFAULT false,
                moved_at timestamptz,
                strike_at timestamptz,
                quarantined boolean NOT NULL DEFAULT false,
                quarantine_reason text NOT NULL DEFAULT ''
            );
            CREATE INDEX tailnet_leases_owner ON tailnet_leases (owner, owner_instance);
            CREATE INDEX tailnet_leases_claimable ON tailnet_leases (expires_at) WHERE NOT quarantined;
            CREATE TABLE tailnet_changes (
                tailnet text COLLATE "C" NOT NULL REFERENCES tailnets(name) ON DELETE CASCADE,
                revision bigint NOT NULL,
                epoch bigint NOT NULL,
                kind text NOT NULL,
                node_id bigint NOT NULL,
                detail text NOT NULL,
                idempotency_key text,
                committed_at timestamptz NOT NULL,
                PRIMARY KEY (tailnet, revision)
            );
            CREATE UNIQUE INDEX tailnet_changes_idempotency ON tailnet_changes (tailnet, idempotency_key) WHERE idempotency_key IS NOT NULL;
            CREATE INDEX tailnet_changes_committed ON tailnet_changes (committed_at);
            CREATE TABLE coordination_servers (
                id text COLLATE "C" PRIMARY KEY,
                url text NOT NULL,
                instance text NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL,
                draining boolean NOT NULL DEFAULT false,
                load text NOT NULL DEFAULT '',
                stopped boolean NOT NULL DEFAULT false
            );
            CREATE TABLE cluster_roles (
                role text COLLATE "C" PRIMARY KEY,
                owner text NOT NULL,
                owner_instance text NOT NULL,
                expires_at timestamptz NOT NULL
            );
            CREATE TABLE cluster_settings (
                name text COLLATE "C" PRIMARY KEY,
                value text NOT NULL
            );
            CREATE TABLE coordination_incidents (
                id text COLLATE "C" PRIMARY KEY,
                cause text NOT NULL,
                subject text NOT NULL,
                started_at timestamptz NOT NULL,
                tailnets_total bigint NOT NULL,
                nodes_total bigint NOT NULL
            );
            CREATE INDEX coordination_incidents_started ON coordination_incidents (started_at);
            CREATE TABLE coordination_incident_tailnets (
                incident_id text COLLATE "C" NOT NULL REFERENCES coordination_incidents(id) ON DELETE CASCADE,
                tailnet text COLLATE "C" NOT NULL,
                server text NOT NULL,
                epoch bigint NOT NULL,
                detect_ms bigint NOT NULL,
                nodes_affected integer NOT NULL,
                nodes_resumed integer NOT NULL,
                gap_node_seconds double precision NOT NULL,
                median_gap_ms bigint NOT NULL,
                max_gap_ms bigint NOT NULL,
                mitigate_ms bigint,
                refused_writes integer NOT NULL,
                severity text NOT NULL,
                closed boolean NOT NULL,
                PRIMARY KEY (incident_id, tailnet)
            );
            """),
        // When servers first reached the database after each start of it: the sticky period after a
        // restart runs from there, not from the postmaster's start (crash recovery can take longer
        // than a TTL, and previous owners cannot renew while it runs).
        (2, """
            CREATE TABLE coordination_store_starts (
                postmaster_start timestamptz PRIMARY KEY,
                first_reached timestamptz NOT NULL
            );
            """),
    ];

    /// <summary>The version the code expects.</summary>
    public static int Latest => All[^1].Version;
}
