using MeshNet.Coordination.PostgreSql;
using MeshNet.Coordination.Storage;
using MeshNet.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace MeshNet.Coordination.Tests.Storage;

/// <summary>
/// The store contract on PostgreSQL (a database of its own per store, on the shared throwaway
/// cluster), plus what only PostgreSQL does: concurrent migrations, <c>SKIP LOCKED</c> claims
/// from several servers, the session timeouts that free a paused owner's row locks, and unique
/// violations answered as outcomes.
/// </summary>
[Trait("Category", "Integration")]
[Collection(PostgresFixture.Collection)]
[NeedsPostgres]
public sealed class PostgresStoreTests(PostgresFixture postgres) : StoreContractTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    protected override Task<ContractStore> CreateStoreAsync() => PostgresContract.CreateAsync(postgres);

    [PostgresFact]
    public async Task MigrationsRunOnceWhenSeveralServersInitializeTheSameDatabaseAtOnce()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var stores = Enumerable.Range(0, 6).Select(_ => new PostgresCoordinationStore(connectionString)).ToList();
        try
        {
            var versions = await Task.WhenAll(stores.Select(store => Task.Run(() => store.InitializeAsync(default))));
            versions.Should().OnlyContain(version => version == PostgresMigrations.Latest);
            (await ScalarAsync(connectionString, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version;"))
                .Should().Be(string.Join(',', PostgresMigrations.All.Select(migration => migration.Version)));
            (await stores[0].InitializeAsync(default)).Should().Be(PostgresMigrations.Latest, "initializing again is harmless");
        }
        finally
        {
            foreach (var store in stores)
            {
                await store.DisposeAsync();
            }
        }
    }

    [PostgresFact]
    public async Task RefusesASchemaNewerThanItKnows()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using (var store = new PostgresCoordinationStore(connectionString))
        {
            await store.InitializeAsync(default);
        }
        await ScalarAsync(connectionString, "INSERT INTO schema_version (version) VALUES (99);");
        await using var again = new PostgresCoordinationStore(connectionString);
        (await again.Invoking(store => store.InitializeAsync(default)).Should().ThrowAsync<StoreSchemaException>())
            .Which.Message.Should().Contain("99");
    }

    [PostgresFact]
    public async Task TwoServersClaimingAHundredTailnetsInParallelNeverGrantOneTwice()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var first = new PostgresCoordinationStore(connectionString);
        await using var second = new PostgresCoordinationStore(connectionString);
        await first.InitializeAsync(default);
        await second.InitializeAsync(default);
        var tailnets = Enumerable.Range(0, 100).Select(i => $"t{i:000}").ToArray();
        foreach (var tailnet in tailnets)
        {
            await first.TryCreateTailnetAsync(Tailnet(tailnet), default);
        }
        await first.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        await second.RegisterServerAsync("s2", "http://s2.test", "i2", default);

        // Four claimers per server, each claiming a few at a time until nothing is left.
        var claimers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            var (store, server, instance) = i % 2 == 0 ? (first, "s1", "i1") : (second, "s2", "i2");
            var granted = new List<(LeaseGrant Grant, string Server)>();
            while (true)
            {
                var grants = await store.ClaimAsync(ContractStore.Claim(server, instance, Long, limit: 3), default);
                if (grants.Count == 0)
                {
                    return granted;
                }
                granted.AddRange(grants.Select(grant => (grant, server)));
            }
        })).ToList();
        var all = (await Task.WhenAll(claimers)).SelectMany(granted => granted).ToList();

        all.Select(item => item.Grant.Tailnet).Should().OnlyHaveUniqueItems().And.HaveCount(100);
        all.Should().OnlyContain(item => item.Grant.Epoch == 1 && !item.Grant.Quarantined);
        var leases = (await first.ListLeasesAsync(default)).ToDictionary(lease => lease.Tailnet);
        all.Should().OnlyContain(item => leases[item.Grant.Tailnet].Owner == item.Server && leases[item.Grant.Tailnet].Epoch == 1,
            "each lease is held by the server it was granted to");
    }

    [PostgresFact]
    public async Task AClaimSkipsALeaseRowAnotherTransactionHoldsInsteadOfWaiting()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var store = await OpenStoreAsync(connectionString);
        await store.TryCreateTailnetAsync(Tailnet("locked"), default);
        await store.TryCreateTailnetAsync(Tailnet("free"), default);
        await store.RegisterServerAsync("s1", "http://s1.test", "i1", default);

        await using var holder = new NpgsqlConnection(connectionString);
        await holder.OpenAsync();
        await using var transaction = await holder.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand("SELECT 1 FROM tailnet_leases WHERE tailnet = 'locked' FOR UPDATE;", holder, transaction))
        {
            await lockRow.ExecuteScalarAsync();
        }
        // A claim that waited on the row would fail after lock_timeout; it skips it at once.
        (await store.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Select(grant => grant.Tailnet).Should().Equal("free");

        await transaction.CommitAsync();
        (await store.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Select(grant => grant.Tailnet).Should().Equal("locked");
    }

    [PostgresFact]
    public async Task AnIdleTransactionHoldingALeaseRowIsEndedByTheDatabaseSoATakeoverSucceeds()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var options = new PostgresStoreOptions { IdleInTransactionTimeout = TimeSpan.FromSeconds(1) };
        await using var owner = await OpenStoreAsync(connectionString, options);
        await using var standby = await OpenStoreAsync(connectionString, options);
        await owner.TryCreateTailnetAsync(Tailnet("a"), default);
        await owner.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        await standby.RegisterServerAsync("s2", "http://s2.test", "i2", default);
        var epoch = (await owner.ClaimAsync(ContractStore.Claim("s1", "i1", TimeSpan.FromMilliseconds(200)), default)).Single().Epoch;

        // The owner pauses inside a transaction that holds its lease row (a session with the
        // store's settings, as the owner's connections have).
        await using var paused = new NpgsqlConnection(PostgresCoordinationStore.PrepareConnectionString(connectionString, options));
        await paused.OpenAsync();
        var transaction = await paused.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand("SELECT 1 FROM tailnet_leases WHERE tailnet = 'a' FOR UPDATE;", paused, transaction))
        {
            await lockRow.ExecuteScalarAsync();
        }

        LeaseGrant? takeover = null;
        await WaitUntilAsync(async () =>
        {
            takeover = (await standby.ClaimAsync(ContractStore.Claim("s2", "i2", Long, "a"), default)).SingleOrDefault();
            return takeover is not null;
        }, TimeSpan.FromSeconds(20), "the idle transaction is ended and its row lock released");
        takeover!.Epoch.Should().Be(epoch + 1);
        takeover.PreviousOwner.Should().Be("s1");
        await paused.Invoking(async connection =>
        {
            await using var command = new NpgsqlCommand("SELECT 1;", connection, transaction);
            await command.ExecuteScalarAsync();
        }).Should().ThrowAsync<NpgsqlException>("the database ended the paused session");
    }

    [PostgresFact]
    public async Task AWriteWaitingOnALockedLeaseRowFailsAfterTheLockTimeoutInsteadOfHanging()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var store = await OpenStoreAsync(connectionString, new PostgresStoreOptions { LockTimeout = TimeSpan.FromMilliseconds(300) });
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        var epoch = (await store.ClaimAsync(ContractStore.Claim("s1", "i1", Long), default)).Single().Epoch;

        await using var holder = new NpgsqlConnection(connectionString);
        await holder.OpenAsync();
        await using var transaction = await holder.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand("SELECT 1 FROM tailnet_leases WHERE tailnet = 'a' FOR UPDATE;", holder, transaction))
        {
            await lockRow.ExecuteScalarAsync();
        }
        (await store.Invoking(s => s.SavePolicyAsync(new TailnetFence("a", epoch), "{}", Now, default)).Should().ThrowAsync<PostgresException>())
            .Which.SqlState.Should().Be(PostgresErrorCodes.LockNotAvailable);

        await transaction.RollbackAsync();
        (await store.SavePolicyAsync(new TailnetFence("a", epoch), "{}", Now, default)).Revision.Should().Be(1, "the failed write used no revision");
    }

    [PostgresFact]
    public async Task AnInsertThatLosesARaceForANodeKeyToAnotherTailnetIsAnOutcomeNotAnError()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var store = await OpenStoreAsync(connectionString);
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.TryCreateTailnetAsync(Tailnet("b"), default);
        await store.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        var fence = new TailnetFence("a", (await store.ClaimAsync(ContractStore.Claim("s1", "i1", Long, "a"), default)).Single().Epoch);

        // Another tailnet's owner has inserted the same key and not committed yet: the checks
        // cannot see it, the insert waits on the unique index, and fails when it commits.
        await using var rival = new NpgsqlConnection(connectionString);
        await rival.OpenAsync();
        await using var transaction = await rival.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand(
            """
            INSERT INTO nodes (tailnet, node_key, name, hostname, ipv4, ipv6, tags, ephemeral, key_expiry, created)
            VALUES ('b', @k, 'rival', 'rival', '100.64.0.9', 'fd7a:115c:a1e0::9', '{}', false, now(), now());
            """, rival, transaction))
        {
            insert.Parameters.AddWithValue("k", KeyBytes(7));
            await insert.ExecuteNonQueryAsync();
        }
        var racing = store.InsertNodeAsync(fence, Node("a", 7, "web", 1), default);
        await WaitUntilAsync(async () => (long)(await ScalarAsync(connectionString,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock';"))! > 0,
            TimeSpan.FromSeconds(10), "the insert waits on the rival's uncommitted key");
        await transaction.CommitAsync();

        var result = await racing;
        result.Status.Should().Be(FencedStatus.NotApplied);
        result.Value.Outcome.Should().Be(NodeInsertOutcome.NodeKeyTaken);
        (await store.GetLeaseAsync("a", default))!.Revision.Should().Be(0, "a refused insert uses no revision");
        (await store.InsertNodeAsync(fence, Node("a", 8, "web", 1), default)).Value.Node!.Revision.Should().Be(1);
    }

    [PostgresFact]
    public async Task TheServiceCollectionGetsOneStoreForBothInterfacesAndAGivenDataSourceOutlivesTheStore()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var services = new ServiceCollection().AddMeshNetCoordinationPostgreSql(connectionString, options => options.RenewalPoolSize = 1);
        services.AddMeshNetCoordination(options =>
        {
            options.AdminToken = "0123456789abcdef";
            options.ServerId = "s1";
        });
        await using (var provider = services.BuildServiceProvider())
        {
            var data = provider.GetRequiredService<ICoordinationStore>();
            data.Should().BeOfType<PostgresCoordinationStore>("the coordination service uses the store registered before it");
            provider.GetRequiredService<ICoordinationLeaseStore>().Should().BeSameAs(data);
            (await data.InitializeAsync(default)).Should().Be(PostgresMigrations.Latest);
        }
        services.Invoking(s => s.AddMeshNetCoordinationPostgreSql(connectionString)).Should().Throw<InvalidOperationException>();
        new ServiceCollection().Invoking(s => s.AddMeshNetCoordinationPostgreSql(connectionString, options => options.LockTimeout = TimeSpan.Zero))
            .Should().Throw<ArgumentException>().Which.Message.Should().Contain("LockTimeout");

        await using var dataSource = NpgsqlDataSource.Create(PostgresCoordinationStore.PrepareConnectionString(connectionString));
        await using (var store = new PostgresCoordinationStore(dataSource))
        {
            await store.InitializeAsync(default);
            (await store.TryCreateTailnetAsync(Tailnet("a"), default)).Should().BeTrue();
        }
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM tailnets;", connection);
        (await command.ExecuteScalarAsync()).Should().Be(1L, "the caller's data source is still open");
    }

    [PostgresFact]
    public async Task AfterADatabaseRestartStoresCarryOnAndOnlyThePreviousOwnerTakesAnExpiredLeaseBackDuringTheStickyPeriod()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var owner = await OpenStoreAsync(connectionString);
        await using var standby = await OpenStoreAsync(connectionString);
        await owner.TryCreateTailnetAsync(Tailnet("a"), default);
        await owner.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        await standby.RegisterServerAsync("s2", "http://s2.test", "i2", default);
        var epoch = (await owner.ClaimAsync(ContractStore.Claim("s1", "i1", TimeSpan.FromMilliseconds(1)), default)).Single().Epoch;
        // Warm both pools so that their connections are the ones the restart breaks.
        await owner.RenewAsync("s1", "i1", TimeSpan.FromMilliseconds(1), "", default);
        await standby.ListLeasesAsync(default);

        await postgres.Cluster.RestartAsync("immediate");

        // Every pooled connection is broken now; each call below is the first on its pool, and
        // none fails (the pool is cleared and the call runs again on a new connection).
        var sticky = TimeSpan.FromDays(1);
        (await standby.ClaimAsync(ContractStore.Claim("s2", "i2", Long, sticky: sticky), default))
            .Should().BeEmpty("right after the database started, only the previous owner may take an expired lease");
        (await owner.RenewAsync("s1", "i1", Long, "", default)).Held.Should().Equal([new HeldLease("a", epoch)], "the owner keeps its tailnet and epoch");
        (await owner.SavePolicyAsync(new TailnetFence("a", epoch), "{}", Now, default)).Status.Should().Be(FencedStatus.Committed);
    }

    [PostgresFact]
    public async Task TheStickyPeriodRunsFromTheFirstHeartbeatThatReachedTheRestartedDatabaseNotFromItsStart()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using var owner = await OpenStoreAsync(connectionString);
        await using var standby = await OpenStoreAsync(connectionString);
        await owner.TryCreateTailnetAsync(Tailnet("a"), default);
        await owner.RegisterServerAsync("s1", "http://s1.test", "i1", default);
        await standby.RegisterServerAsync("s2", "http://s2.test", "i2", default);
        var epoch = (await owner.ClaimAsync(ContractStore.Claim("s1", "i1", TimeSpan.FromMilliseconds(1)), default)).Single().Epoch;

        await postgres.Cluster.RestartAsync("immediate");
        // As if recovery had kept every server out for a while: the database has been up for longer
        // than the sticky period before any claim reaches it.
        var sticky = TimeSpan.FromMilliseconds(600);
        await WaitUntilAsync(async () => (bool)(await ScalarAsync(connectionString, $"SELECT now() - pg_postmaster_start_time() > interval '{2 * sticky.TotalMilliseconds} milliseconds';"))!,
            TimeSpan.FromSeconds(30), "the database has been up for twice the sticky period");

        (await standby.ClaimAsync(ContractStore.Claim("s2", "i2", Long, sticky: sticky), default))
            .Should().BeEmpty("no server has reached the database since it started: the sticky period has not begun");
        (await standby.RenewAsync("s2", "i2", Long, "", default)).Registered.Should().BeTrue();
        (await standby.ClaimAsync(ContractStore.Claim("s2", "i2", Long, sticky: sticky), default))
            .Should().BeEmpty("the sticky period starts with the first heartbeat that reached the database");
        await WaitUntilAsync(async () => (await standby.ClaimAsync(ContractStore.Claim("s2", "i2", Long, sticky: sticky), default)).Count == 1,
            TimeSpan.FromSeconds(30), "once the sticky period has run, a standby takes the expired lease");
        var lease = (await standby.ListLeasesAsync(default)).Single();
        lease.Owner.Should().Be("s2");
        lease.Epoch.Should().Be(epoch + 1);
    }

    [PostgresFact]
    public async Task IncidentPartsThatCloseAtOnceAreStoredAfterTheirIncident()
    {
        await using var store = await OpenStoreAsync(await postgres.CreateDatabaseAsync());
        await Unit.IncidentRecorderTests.PartsClosingAtOnceAreStoredAsync(store, store, TimeProvider.System);
    }

    private static async Task<PostgresCoordinationStore> OpenStoreAsync(string connectionString, PostgresStoreOptions? options = null)
    {
        var store = new PostgresCoordinationStore(connectionString, options);
        await store.InitializeAsync(default);
        return store;
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string because)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, $"{because} within {timeout.TotalSeconds:0} s");
            await Task.Delay(20);
        }
    }
}

/// <summary>The lease contract on PostgreSQL.</summary>
[Trait("Category", "Integration")]
[Collection(PostgresFixture.Collection)]
[NeedsPostgres]
public sealed class PostgresLeaseStoreTests(PostgresFixture postgres) : LeaseStoreContractTests
{
    protected override Task<ContractStore> CreateStoreAsync() => PostgresContract.CreateAsync(postgres);
}

internal static class PostgresContract
{
    /// <summary>A store on a new database of the shared cluster, initialized.</summary>
    public static async Task<ContractStore> CreateAsync(PostgresFixture postgres)
    {
        var store = new PostgresCoordinationStore(await postgres.CreateDatabaseAsync());
        await store.InitializeAsync(default);
        return new ContractStore(store, store, store.DisposeAsync);
    }
}
