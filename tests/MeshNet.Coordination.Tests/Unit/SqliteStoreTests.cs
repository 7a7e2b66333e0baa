using System.Net;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class SqliteStoreTests : IDisposable
{
    private static readonly DateTimeOffset Now = CoordinationHarness.Epoch;
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task MigratesAnEmptyFileInOrderAndReopensIdempotently()
    {
        var path = _directory.File("nested/dir/coordination.db");
        using (var store = new SqliteCoordinationStore(path))
        {
            (await store.InitializeAsync(default)).Should().Be(3);
        }
        File.Exists(path).Should().BeTrue();
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(path).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite, "the file holds the server's secret key");
        }
        Scalar(path, "PRAGMA journal_mode;").Should().Be("wal");
        Scalar(path, "SELECT group_concat(version) FROM (SELECT version FROM schema_version ORDER BY version);").Should().Be("1,2,3");

        using (var store = new SqliteCoordinationStore(path))
        {
            (await store.InitializeAsync(default)).Should().Be(3);
            (await store.InitializeAsync(default)).Should().Be(3);
        }
        Scalar(path, "SELECT COUNT(*) FROM schema_version;").Should().Be(3L);
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

    [Fact]
    public async Task ServerKeyIsStoredOnceAndKept()
    {
        using var store = await OpenAsync();
        var first = await store.GetOrAddServerKeyAsync(Enumerable.Repeat((byte)1, 32).ToArray(), Now, default);
        var second = await store.GetOrAddServerKeyAsync(Enumerable.Repeat((byte)2, 32).ToArray(), Now, default);
        first.Should().Equal(Enumerable.Repeat((byte)1, 32));
        second.Should().Equal(first);
    }

    [Fact]
    public async Task TailnetsAuthKeysAndNodesRoundTripAndDeleteCascades()
    {
        using var store = await OpenAsync();
        (await store.TryCreateTailnetAsync(Tailnet("a"), default)).Should().BeTrue();
        (await store.TryCreateTailnetAsync(Tailnet("a"), default)).Should().BeFalse();
        (await store.TryCreateAuthKeyAsync(Key("k1", "a", reusable: false), default)).Should().BeTrue();
        (await store.TryCreateAuthKeyAsync(Key("k2", "missing", reusable: false), default)).Should().BeFalse("the tailnet does not exist");

        var inserted = await store.InsertNodeAsync(Node("a", 1, "web", 1) with { AuthKeyId = "k1", Tags = ["tag:x", "tag:y"] }, default);
        inserted.Outcome.Should().Be(NodeInsertOutcome.Inserted);
        var node = inserted.Node!;
        node.Id.Should().BeGreaterThan(0);
        var loaded = await store.GetNodeByKeyAsync(node.NodeKey, default);
        loaded.Should().BeEquivalentTo(node);
        (await store.GetAuthKeyAsync("k1", default))!.Uses.Should().Be(1);
        (await store.ListNamesWithPrefixAsync("a", "we", default)).Should().Equal("web");
        (await store.ListNamesWithPrefixAsync("a", "web-", default)).Should().BeEmpty();

        (await store.DeleteTailnetAsync("a", default)).Should().BeTrue();
        (await store.GetNodeAsync(node.Id, default)).Should().BeNull();
        (await store.GetAuthKeyAsync("k1", default)).Should().BeNull();
    }

    [Fact]
    public async Task UniquenessIsEnforcedPerTailnetAndKeysAcrossTheServer()
    {
        using var store = await OpenAsync();
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.TryCreateTailnetAsync(Tailnet("b"), default);
        var first = (await store.InsertNodeAsync(Node("a", 1, "web", 1), default)).Node!;

        (await store.InsertNodeAsync(Node("a", 2, "web", 2), default)).Outcome.Should().Be(NodeInsertOutcome.NameTaken);
        (await store.InsertNodeAsync(Node("a", 2, "db", 1), default)).Outcome.Should().Be(NodeInsertOutcome.AddressTaken);
        (await store.InsertNodeAsync(Node("a", 1, "db", 2), default)).Outcome.Should().Be(NodeInsertOutcome.NodeKeyTaken);
        (await store.InsertNodeAsync(Node("b", 1, "web", 1), default)).Outcome.Should().Be(NodeInsertOutcome.NodeKeyTaken, "a node key is unique across tailnets");
        (await store.InsertNodeAsync(Node("b", 3, "web", 1), default)).Outcome.Should().Be(NodeInsertOutcome.Inserted, "names and addresses are per tailnet");
        (await store.InsertNodeAsync(Node("gone", 4, "web", 4), default)).Outcome.Should().Be(NodeInsertOutcome.TailnetMissing);

        (await store.UpdateNodeKeyAsync(first.Id, KeyBytes(1), KeyBytes(3), Now, null, Now, default)).Should().Be(NodeKeyUpdateOutcome.NodeKeyTaken);
        (await store.UpdateNodeKeyAsync(first.Id, KeyBytes(9), KeyBytes(5), Now, null, Now, default)).Should().Be(NodeKeyUpdateOutcome.NodeMissing);
        (await store.UpdateNodeKeyAsync(first.Id, KeyBytes(1), KeyBytes(5), Now.AddDays(1), null, Now, default)).Should().Be(NodeKeyUpdateOutcome.Updated);
        var rotated = (await store.GetNodeByKeyAsync(KeyBytes(5), default))!;
        rotated.Id.Should().Be(first.Id);
        rotated.KeyExpiry.Should().Be(Now.AddDays(1));
    }

    [Fact]
    public async Task OneOffKeysCountOneUseAndUnusableKeysRegisterNothing()
    {
        using var store = await OpenAsync();
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.TryCreateAuthKeyAsync(Key("once", "a", reusable: false), default);
        await store.TryCreateAuthKeyAsync(Key("many", "a", reusable: true), default);
        await store.TryCreateAuthKeyAsync(Key("old", "a", reusable: true) with { Expires = Now }, default);
        await store.TryCreateAuthKeyAsync(Key("revoked", "a", reusable: true), default);
        (await store.RevokeAuthKeyAsync("revoked", default)).Should().BeTrue();

        (await store.InsertNodeAsync(Node("a", 1, "n1", 1) with { AuthKeyId = "once" }, default)).Outcome.Should().Be(NodeInsertOutcome.Inserted);
        (await store.InsertNodeAsync(Node("a", 2, "n2", 2) with { AuthKeyId = "once" }, default)).Outcome.Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await store.InsertNodeAsync(Node("a", 2, "n2", 2) with { AuthKeyId = "old" }, default)).Outcome.Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await store.InsertNodeAsync(Node("a", 2, "n2", 2) with { AuthKeyId = "revoked" }, default)).Outcome.Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await store.InsertNodeAsync(Node("a", 2, "n2", 2) with { AuthKeyId = "many" }, default)).Outcome.Should().Be(NodeInsertOutcome.Inserted);
        (await store.InsertNodeAsync(Node("a", 3, "n3", 3) with { AuthKeyId = "many" }, default)).Outcome.Should().Be(NodeInsertOutcome.Inserted);
        (await store.GetAuthKeyAsync("many", default))!.Uses.Should().Be(2);
        (await store.ListNodesAsync("a", default)).Select(node => node.Name).Should().Equal("n1", "n2", "n3");
    }

    [Fact]
    public async Task AKeyUpdateAuthorizedByAnAuthKeyCountsItsUseOrChangesNothing()
    {
        using var store = await OpenAsync();
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.TryCreateTailnetAsync(Tailnet("b"), default);
        await store.TryCreateAuthKeyAsync(Key("once", "a", reusable: false), default);
        await store.TryCreateAuthKeyAsync(Key("other", "b", reusable: true), default);
        var node = (await store.InsertNodeAsync(Node("a", 1, "n1", 1), default)).Node!;

        (await store.UpdateNodeKeyAsync(node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "other", Now, default))
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable, "an auth key of another tailnet authorizes nothing here");
        (await store.UpdateNodeKeyAsync(node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "missing", Now, default))
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable);
        (await store.GetNodeByKeyAsync(KeyBytes(1), default)).Should().NotBeNull("a refused update changes nothing");

        (await store.UpdateNodeKeyAsync(node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "once", Now, default)).Should().Be(NodeKeyUpdateOutcome.Updated);
        (await store.GetAuthKeyAsync("once", default))!.Uses.Should().Be(1);
        (await store.UpdateNodeKeyAsync(node.Id, KeyBytes(2), KeyBytes(3), Now.AddDays(2), "once", Now, default))
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable, "the one-off key is used up");
        (await store.GetNodeByKeyAsync(KeyBytes(2), default))!.KeyExpiry.Should().Be(Now.AddDays(1));
        (await store.GetAuthKeyAsync("other", default))!.Uses.Should().Be(0);
    }

    [Fact]
    public async Task ConcurrentUsesOfAOneOffKeyRegisterExactlyOneNode()
    {
        using var store = await OpenAsync();
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.TryCreateAuthKeyAsync(Key("once", "a", reusable: false), default);
        var results = await Task.WhenAll(Enumerable.Range(1, 8).Select(i =>
            Task.Run(() => store.InsertNodeAsync(Node("a", (byte)i, $"n{i}", (uint)i) with { AuthKeyId = "once" }, default))));
        results.Count(result => result.Outcome == NodeInsertOutcome.Inserted).Should().Be(1);
    }

    [Fact]
    public async Task MaintenanceQueriesFindIdleEphemeralNodesAndDueKeyExpiries()
    {
        using var store = await OpenAsync();
        await store.TryCreateTailnetAsync(Tailnet("a"), default);
        var idle = (await store.InsertNodeAsync(Node("a", 1, "idle", 1) with { Ephemeral = true }, default)).Node!;
        var seen = (await store.InsertNodeAsync(Node("a", 2, "seen", 2) with { Ephemeral = true }, default)).Node!;
        await store.InsertNodeAsync(Node("a", 3, "durable", 3), default);
        await store.SetLastSeenAsync(seen.Id, Now.AddMinutes(10), default);
        (await store.ListEphemeralNodesIdleSinceAsync(Now.AddMinutes(5), 10, default)).Select(node => node.Id).Should().Equal(idle.Id);

        await store.SetKeyExpiryAsync(idle.Id, Now.AddHours(1), default);
        await store.SetKeyExpiryAsync(seen.Id, Now.AddHours(3), default);
        (await store.ListNodesWithKeyExpiryAsync(Now, Now.AddHours(2), 10, default)).Select(node => node.Id).Should().Equal(idle.Id);
        (await store.ListNodesWithKeyExpiryAsync(Now.AddHours(1), Now.AddHours(3), 10, default)).Select(node => node.Id).Should().Equal(seen.Id);
    }

    private async Task<SqliteCoordinationStore> OpenAsync()
    {
        var store = new SqliteCoordinationStore(_directory.File($"{Guid.NewGuid():N}.db"));
        await store.InitializeAsync(default);
        return store;
    }

    private static StoredTailnet Tailnet(string name) => new(name, $"{name}.meshnet.internal", Now, TimeSpan.FromDays(180));

    private static StoredAuthKey Key(string id, string tailnet, bool reusable) =>
        new(id, tailnet, new byte[32], reusable, false, [], Now, Now.AddDays(1), 0, false, "");

    private static byte[] KeyBytes(byte seed) => Enumerable.Repeat(seed, 32).ToArray();

    private static StoredNode Node(string tailnet, byte key, string name, uint address) =>
        new(0, tailnet, KeyBytes(key), name, name, Registry.AddressAllocator.ToIPv4(0x6440_0000 + address),
            Registry.AddressAllocator.ToIPv6(0x6440_0000 + address), [], false, Now.AddDays(180), Now, null, null);

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
