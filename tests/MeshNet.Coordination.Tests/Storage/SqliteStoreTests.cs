using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Tests.Storage;

/// <summary>The store contract on SQLite, plus what only the SQLite file does (its mode, WAL, migrations).</summary>
[Trait("Category", "Unit")]
public sealed class SqliteStoreTests : StoreContractTests, IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    protected override Task<ContractStore> CreateStoreAsync() => SqliteContract.CreateAsync(_directory);

    [Fact]
    public async Task MigratesAnEmptyFileInOrderAndReopensIdempotently()
    {
        var path = _directory.File("nested/dir/coordination.db");
        using (var store = new SqliteCoordinationStore(path))
        {
            (await store.InitializeAsync(default)).Should().Be(4);
        }
        File.Exists(path).Should().BeTrue();
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(path).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite, "the file holds the server's secret key");
        }
        Scalar(path, "PRAGMA journal_mode;").Should().Be("wal");
        Scalar(path, "SELECT group_concat(version) FROM (SELECT version FROM schema_version ORDER BY version);").Should().Be("1,2,3,4");

        using (var store = new SqliteCoordinationStore(path))
        {
            (await store.InitializeAsync(default)).Should().Be(4);
            (await store.InitializeAsync(default)).Should().Be(4);
        }
        Scalar(path, "SELECT COUNT(*) FROM schema_version;").Should().Be(4L);
    }

    [Fact]
    public async Task AVersionThreeDatabaseGetsLeasesForItsTailnetsAndKeepsItsNodes()
    {
        var path = _directory.File("v3.db");
        using (var store = new SqliteCoordinationStore(path))
        {
            await store.InitializeAsync(default);
        }
        // Back to schema 3 with one tailnet and one node, as a release before leases left it.
        Execute(path, """
            DROP TABLE coordination_incident_tailnets; DROP TABLE coordination_incidents; DROP TABLE cluster_settings; DROP TABLE cluster_roles;
            DROP TABLE coordination_servers; DROP TABLE tailnet_changes; DROP TABLE tailnet_leases;
            ALTER TABLE nodes DROP COLUMN online; ALTER TABLE nodes DROP COLUMN endpoints; ALTER TABLE nodes DROP COLUMN instance;
            ALTER TABLE nodes DROP COLUMN revision; ALTER TABLE nodes DROP COLUMN tags_revision; ALTER TABLE policies DROP COLUMN revision;
            DELETE FROM schema_version WHERE version = 4;
            INSERT INTO tailnets (name, domain, created, node_key_lifetime_ms) VALUES ('old', 'old.meshnet.internal', 0, 86400000);
            INSERT INTO nodes (tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created)
                VALUES ('old', zeroblob(32), 'web', 'web', '100.64.0.1', 'fd7a:115c:a1e0::1', '', 0, 99999999999999, 0);
            """);
        using var migrated = new SqliteCoordinationStore(path);
        (await migrated.InitializeAsync(default)).Should().Be(4);
        var lease = (await migrated.GetLeaseAsync("old", default))!;
        (lease.Owner, lease.Epoch, lease.Revision).Should().Be(((string?)null, 0UL, 0UL));
        var node = (await migrated.ListNodesAsync("old", default)).Single();
        (node.Online, node.Endpoints.Count, node.Revision).Should().Be((false, 0, 0UL));
    }

    [Fact]
    public async Task RefusesASchemaNewerThanItKnows()
    {
        var path = _directory.File("future.db");
        using (var store = new SqliteCoordinationStore(path))
        {
            await store.InitializeAsync(default);
        }
        Execute(path, "INSERT INTO schema_version (version, applied) VALUES (99, 0);");
        using var again = new SqliteCoordinationStore(path);
        (await again.Invoking(s => s.InitializeAsync(default)).Should().ThrowAsync<StoreSchemaException>())
            .Which.Message.Should().Contain("99");
    }

    private static object? Scalar(string path, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={path}");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    private static void Execute(string path, string sql) => Scalar(path, sql);
}

/// <summary>The lease contract on SQLite.</summary>
[Trait("Category", "Unit")]
public sealed class SqliteLeaseStoreTests : LeaseStoreContractTests, IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    protected override Task<ContractStore> CreateStoreAsync() => SqliteContract.CreateAsync(_directory);
}

internal static class SqliteContract
{
    public static async Task<ContractStore> CreateAsync(TempDirectory directory)
    {
        var store = new SqliteCoordinationStore(directory.File($"{Guid.NewGuid():N}.db"));
        await store.InitializeAsync(default);
        return new ContractStore(store, store, () =>
        {
            store.Dispose();
            return ValueTask.CompletedTask;
        });
    }
}
