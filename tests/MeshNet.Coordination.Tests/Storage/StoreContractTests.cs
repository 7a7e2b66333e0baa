using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Storage;
using MeshNet.TestSupport;

namespace MeshNet.Coordination.Tests.Storage;

/// <summary>
/// What every coordination store must do, run against SQLite and PostgreSQL alike: durable data
/// with its uniqueness rules, and fencing, revisions, the change log and idempotency.
/// </summary>
public abstract class StoreContractTests : IAsyncLifetime
{
    protected static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    private readonly List<IAsyncDisposable> _owned = [];

    /// <summary>A new, empty, initialized store, disposed with the test.</summary>
    protected abstract Task<ContractStore> CreateStoreAsync();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }
    }

    protected async Task<ContractStore> OpenAsync()
    {
        var store = await CreateStoreAsync();
        _owned.Add(store);
        return store;
    }

    [ContractFact]
    public async Task InitializingAgainIsHarmlessAndTheServerKeyIsStoredOnce()
    {
        var store = await OpenAsync();
        int version = await store.Data.InitializeAsync(default);
        (await store.Data.InitializeAsync(default)).Should().Be(version);
        var first = await store.Data.GetOrAddServerKeyAsync(Enumerable.Repeat((byte)1, 32).ToArray(), Now, default);
        var second = await store.Data.GetOrAddServerKeyAsync(Enumerable.Repeat((byte)2, 32).ToArray(), Now, default);
        first.Should().Equal(Enumerable.Repeat((byte)1, 32));
        second.Should().Equal(first);
    }

    [ContractFact]
    public async Task TailnetsAuthKeysAndNodesRoundTripAndDeleteCascades()
    {
        var store = await OpenAsync();
        (await store.Data.TryCreateTailnetAsync(Tailnet("a"), default)).Should().BeTrue();
        (await store.Data.TryCreateTailnetAsync(Tailnet("a"), default)).Should().BeFalse();
        var fence = await store.OwnAsync("a");
        (await store.Data.TryCreateAuthKeyAsync(fence, Key("k1", "a", reusable: false), default)).Value.Should().BeTrue();

        var inserted = await store.Data.InsertNodeAsync(fence, Node("a", 1, "web", 1) with { AuthKeyId = "k1", Tags = ["tag:x", "tag:y"] }, default);
        inserted.Status.Should().Be(FencedStatus.Committed);
        var node = inserted.Value.Node!;
        node.Id.Should().BeGreaterThan(0);
        (await store.Data.GetNodeByKeyAsync(node.NodeKey, default)).Should().BeEquivalentTo(node);
        (await store.Data.GetNodeAsync(node.Id, default)).Should().BeEquivalentTo(node);
        (await store.Data.GetAuthKeyAsync("k1", default))!.Uses.Should().Be(1);
        (await store.Data.ListNamesWithPrefixAsync("a", "we", default)).Should().Equal("web");
        (await store.Data.ListNamesWithPrefixAsync("a", "web-", default)).Should().BeEmpty();
        (await store.Data.CountNodesAsync(default)).Should().Be(1);
        (await store.Data.ListTailnetsAsync(default)).Select(tailnet => tailnet.Name).Should().Equal("a");

        (await store.Data.DeleteTailnetAsync(fence, default)).Value.Should().BeTrue();
        (await store.Data.GetNodeAsync(node.Id, default)).Should().BeNull();
        (await store.Data.GetAuthKeyAsync("k1", default)).Should().BeNull();
        (await store.Leases.GetLeaseAsync("a", default)).Should().BeNull("the lease goes with its tailnet");
        (await store.Data.LoadTailnetAsync("a", default)).Should().BeNull();
    }

    [ContractFact]
    public async Task UniquenessIsEnforcedPerTailnetAndKeysAcrossTheDeployment()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.Data.TryCreateTailnetAsync(Tailnet("b"), default);
        var a = await store.OwnAsync("a");
        var b = await store.OwnAsync("b");
        var first = (await store.Data.InsertNodeAsync(a, Node("a", 1, "web", 1), default)).Value.Node!;

        (await Insert(store, a, Node("a", 2, "web", 2))).Should().Be(NodeInsertOutcome.NameTaken);
        (await Insert(store, a, Node("a", 2, "db", 1))).Should().Be(NodeInsertOutcome.AddressTaken);
        (await Insert(store, a, Node("a", 1, "db", 2))).Should().Be(NodeInsertOutcome.NodeKeyTaken);
        (await Insert(store, b, Node("b", 1, "web", 1))).Should().Be(NodeInsertOutcome.NodeKeyTaken, "a node key is unique across tailnets");
        (await Insert(store, b, Node("b", 3, "web", 1))).Should().Be(NodeInsertOutcome.Inserted, "names and addresses are per tailnet");
        var gone = new TailnetFence("gone", 1);
        var missing = await store.Data.InsertNodeAsync(gone, Node("gone", 4, "web", 4), default);
        missing.Status.Should().Be(FencedStatus.NotApplied);
        missing.Value.Outcome.Should().Be(NodeInsertOutcome.TailnetMissing);

        (await store.Data.UpdateNodeKeyAsync(a, first.Id, KeyBytes(1), KeyBytes(3), Now, null, Now, default)).Value.Should().Be(NodeKeyUpdateOutcome.NodeKeyTaken);
        (await store.Data.UpdateNodeKeyAsync(a, first.Id, KeyBytes(9), KeyBytes(5), Now, null, Now, default)).Value.Should().Be(NodeKeyUpdateOutcome.NodeMissing);
        var rotated = await store.Data.UpdateNodeKeyAsync(a, first.Id, KeyBytes(1), KeyBytes(5), Now.AddDays(1), null, Now, default);
        rotated.Status.Should().Be(FencedStatus.Committed);
        rotated.Value.Should().Be(NodeKeyUpdateOutcome.Updated);
        var stored = (await store.Data.GetNodeByKeyAsync(KeyBytes(5), default))!;
        stored.Id.Should().Be(first.Id);
        stored.KeyExpiry.Should().Be(Now.AddDays(1));
        stored.Revision.Should().Be(rotated.Revision);
    }

    [ContractFact]
    public async Task OneOffKeysCountOneUseAndUnusableKeysRegisterNothing()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        await store.Data.TryCreateAuthKeyAsync(a, Key("once", "a", reusable: false), default);
        await store.Data.TryCreateAuthKeyAsync(a, Key("many", "a", reusable: true), default);
        await store.Data.TryCreateAuthKeyAsync(a, Key("old", "a", reusable: true) with { Expires = Now }, default);
        await store.Data.TryCreateAuthKeyAsync(a, Key("revoked", "a", reusable: true), default);
        (await store.Data.RevokeAuthKeyAsync(a, "revoked", default)).Value.Should().BeTrue();
        (await store.Data.RevokeAuthKeyAsync(a, "missing", default)).Status.Should().Be(FencedStatus.NotApplied);

        (await Insert(store, a, Node("a", 1, "n1", 1) with { AuthKeyId = "once" })).Should().Be(NodeInsertOutcome.Inserted);
        (await Insert(store, a, Node("a", 2, "n2", 2) with { AuthKeyId = "once" })).Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await Insert(store, a, Node("a", 2, "n2", 2) with { AuthKeyId = "old" })).Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await Insert(store, a, Node("a", 2, "n2", 2) with { AuthKeyId = "revoked" })).Should().Be(NodeInsertOutcome.AuthKeyUnusable);
        (await Insert(store, a, Node("a", 2, "n2", 2) with { AuthKeyId = "many" })).Should().Be(NodeInsertOutcome.Inserted);
        (await Insert(store, a, Node("a", 3, "n3", 3) with { AuthKeyId = "many" })).Should().Be(NodeInsertOutcome.Inserted);
        (await store.Data.GetAuthKeyAsync("many", default))!.Uses.Should().Be(2);
        (await store.Data.ListNodesAsync("a", default)).Select(node => node.Name).Should().Equal("n1", "n2", "n3");
        (await store.Data.ListAuthKeysAsync("a", default)).Select(key => key.Id).Should().BeEquivalentTo(["once", "many", "old", "revoked"]);
    }

    [ContractFact]
    public async Task AKeyUpdateAuthorizedByAnAuthKeyCountsItsUseOrChangesNothing()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        await store.Data.TryCreateTailnetAsync(Tailnet("b"), default);
        var a = await store.OwnAsync("a");
        var b = await store.OwnAsync("b");
        await store.Data.TryCreateAuthKeyAsync(a, Key("once", "a", reusable: false), default);
        await store.Data.TryCreateAuthKeyAsync(b, Key("other", "b", reusable: true), default);
        var node = (await store.Data.InsertNodeAsync(a, Node("a", 1, "n1", 1), default)).Value.Node!;

        (await store.Data.UpdateNodeKeyAsync(a, node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "other", Now, default)).Value
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable, "an auth key of another tailnet authorizes nothing here");
        (await store.Data.UpdateNodeKeyAsync(a, node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "missing", Now, default)).Value
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable);
        (await store.Data.GetNodeByKeyAsync(KeyBytes(1), default)).Should().NotBeNull("a refused update changes nothing");

        (await store.Data.UpdateNodeKeyAsync(a, node.Id, KeyBytes(1), KeyBytes(2), Now.AddDays(1), "once", Now, default)).Value
            .Should().Be(NodeKeyUpdateOutcome.Updated);
        (await store.Data.GetAuthKeyAsync("once", default))!.Uses.Should().Be(1);
        (await store.Data.UpdateNodeKeyAsync(a, node.Id, KeyBytes(2), KeyBytes(3), Now.AddDays(2), "once", Now, default)).Value
            .Should().Be(NodeKeyUpdateOutcome.AuthKeyUnusable, "the one-off key is used up");
        (await store.Data.GetNodeByKeyAsync(KeyBytes(2), default))!.KeyExpiry.Should().Be(Now.AddDays(1));
        (await store.Data.GetAuthKeyAsync("other", default))!.Uses.Should().Be(0);
    }

    [ContractFact]
    public async Task ConcurrentUsesOfAOneOffKeyRegisterExactlyOneNode()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        await store.Data.TryCreateAuthKeyAsync(a, Key("once", "a", reusable: false), default);
        var results = await Task.WhenAll(Enumerable.Range(1, 8).Select(i =>
            Task.Run(() => store.Data.InsertNodeAsync(a, Node("a", (byte)i, $"n{i}", (uint)i) with { AuthKeyId = "once" }, default))));
        results.Count(result => result.Value.Outcome == NodeInsertOutcome.Inserted).Should().Be(1);
        var changes = await store.Data.ListChangesAsync("a", 0, 100, default);
        changes.Select(change => change.Revision).Should().Equal(Enumerable.Range(1, changes.Count).Select(i => (ulong)i), "revisions stay contiguous");
    }

    [ContractFact]
    public async Task MaintenanceQueriesFindIdleOfflineEphemeralNodesAndDueKeyExpiries()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        var idle = (await store.Data.InsertNodeAsync(a, Node("a", 1, "idle", 1) with { Ephemeral = true }, default)).Value.Node!;
        var seen = (await store.Data.InsertNodeAsync(a, Node("a", 2, "seen", 2) with { Ephemeral = true }, default)).Value.Node!;
        var online = (await store.Data.InsertNodeAsync(a, Node("a", 4, "online", 4) with { Ephemeral = true }, default)).Value.Node!;
        await store.Data.InsertNodeAsync(a, Node("a", 3, "durable", 3), default);
        await store.Data.UpdateLiveStateAsync(a, [new NodeLiveState(seen.Id, false, [], "", Now.AddMinutes(10)), new NodeLiveState(online.Id, true, [], "", null)],
            default);
        (await store.Data.ListEphemeralNodesIdleSinceAsync(Now.AddMinutes(5), 10, default)).Select(node => node.Id).Should().Equal(idle.Id);

        await store.Data.SetKeyExpiryAsync(a, idle.Id, Now.AddHours(1), default);
        await store.Data.SetKeyExpiryAsync(a, seen.Id, Now.AddHours(3), default);
        (await store.Data.ListNodesWithKeyExpiryAsync(Now, Now.AddHours(2), 10, default)).Select(node => node.Id).Should().Equal(idle.Id);
        (await store.Data.ListNodesWithKeyExpiryAsync(Now.AddHours(1), Now.AddHours(3), 10, default)).Select(node => node.Id).Should().Equal(seen.Id);
    }

    [ContractFact]
    public async Task EveryWriteAdvancesTheRevisionByOneAndLogsItUnderItsEpoch()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        var node = (await store.Data.InsertNodeAsync(a, Node("a", 1, "web", 1), default)).Value.Node!;
        node.Revision.Should().Be(1);
        node.TagsRevision.Should().Be(1);
        (await store.Data.UpdateNodeAsync(a, node.Id, "web-host", [], default)).Revision.Should().Be(2);
        (await store.Data.UpdateNodeAsync(a, node.Id, "web-host", ["tag:x"], default)).Revision.Should().Be(3);
        var policy = await store.Data.SavePolicyAsync(a, "{}", Now, default);
        policy.Revision.Should().Be(4);
        policy.Value!.Version.Should().Be(1);
        policy.Value.Revision.Should().Be(4);
        (await store.Data.UpdateLiveStateAsync(a, [new NodeLiveState(node.Id, true, ["192.0.2.1:41641", "[2001:db8::1]:41641"], "run-1", null)], default))
            .Should().Be(new FencedResult<int>(FencedStatus.Committed, 5, 1));
        (await store.Data.DeleteNodeAsync(a, node.Id, default)).Revision.Should().Be(6);
        (await store.Data.DeleteNodeAsync(a, node.Id, default)).Status.Should().Be(FencedStatus.NotApplied, "nothing to delete uses no revision");

        var changes = await store.Data.ListChangesAsync("a", 0, 100, default);
        changes.Select(change => (change.Revision, change.Kind)).Should().Equal(
            (1UL, ChangeKinds.NodeAdded), (2UL, ChangeKinds.NodeUpdated), (3UL, ChangeKinds.NodeUpdated), (4UL, ChangeKinds.PolicySaved),
            (5UL, ChangeKinds.LiveState), (6UL, ChangeKinds.NodeRemoved));
        changes.Should().OnlyContain(change => change.Epoch == a.Epoch && change.Tailnet == "a");
        changes[3].Detail.Should().Be("1", "a policy save records its version");
        changes[5].NodeId.Should().Be(node.Id);
        (await store.Data.ListChangesAsync("a", 4, 1, default)).Single().Revision.Should().Be(5);
        (await store.Leases.GetLeaseAsync("a", default))!.Revision.Should().Be(6);
    }

    [ContractFact]
    public async Task OnlyATagChangeMovesTheTagsRevisionAndLiveStateRoundTrips()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        var node = (await store.Data.InsertNodeAsync(a, Node("a", 1, "web", 1) with { Tags = ["tag:x"] }, default)).Value.Node!;
        await store.Data.UpdateNodeAsync(a, node.Id, "renamed", ["tag:x"], default);
        await store.Data.UpdateLiveStateAsync(a, [new NodeLiveState(node.Id, true, ["192.0.2.1:1", "192.0.2.2:2"], "run-7", null)], default);
        var stored = (await store.Data.GetNodeAsync(node.Id, default))!;
        stored.TagsRevision.Should().Be(1);
        stored.Revision.Should().Be(3);
        stored.Hostname.Should().Be("renamed");
        stored.Online.Should().BeTrue();
        stored.Endpoints.Should().Equal("192.0.2.1:1", "192.0.2.2:2");
        stored.Instance.Should().Be("run-7");
        stored.LastSeen.Should().BeNull();

        await store.Data.UpdateLiveStateAsync(a, [new NodeLiveState(node.Id, false, [], "run-7", Now), new NodeLiveState(999, true, [], "", null)], default);
        stored = (await store.Data.GetNodeAsync(node.Id, default))!;
        stored.Online.Should().BeFalse();
        stored.Endpoints.Should().BeEmpty();
        stored.LastSeen.Should().Be(Now);
        (await store.Data.UpdateNodeAsync(a, node.Id, "renamed", ["tag:y"], default)).Revision.Should().Be(5);
        (await store.Data.GetNodeAsync(node.Id, default))!.TagsRevision.Should().Be(5);
        (await store.Data.UpdateLiveStateAsync(a, [new NodeLiveState(999, true, [], "", null)], default)).Status
            .Should().Be(FencedStatus.NotApplied, "a batch of unknown nodes writes nothing");
    }

    [ContractFact]
    public async Task AStaleEpochIsFencedAndWritesNothing()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        await store.Data.InsertNodeAsync(a, Node("a", 1, "web", 1), default);
        var stale = a with { Epoch = a.Epoch - 1 };
        var ahead = a with { Epoch = a.Epoch + 1 };

        (await store.Data.InsertNodeAsync(stale, Node("a", 2, "db", 2), default)).Status.Should().Be(FencedStatus.Fenced);
        (await store.Data.SavePolicyAsync(ahead, "{}", Now, default)).Status.Should().Be(FencedStatus.Fenced);
        (await store.Data.UpdateLiveStateAsync(stale, [new NodeLiveState(1, true, [], "", null)], default)).Status.Should().Be(FencedStatus.Fenced);
        (await store.Data.DeleteTailnetAsync(stale, default)).Status.Should().Be(FencedStatus.Fenced);
        (await store.Data.ListNodesAsync("a", default)).Should().ContainSingle();
        (await store.Data.GetPolicyAsync("a", default)).Should().BeNull();
        (await store.Data.ListChangesAsync("a", 0, 10, default)).Should().ContainSingle();
        (await store.Leases.GetLeaseAsync("a", default))!.Revision.Should().Be(1, "a fenced write uses no revision");
    }

    [ContractFact]
    public async Task AnIdempotencyKeyAppliesAWriteOnceAndReturnsTheEarlierRevision()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        var first = await store.Data.SavePolicyAsync(a.WithKey("save-1"), "{}", Now, default);
        first.Status.Should().Be(FencedStatus.Committed);
        var again = await store.Data.SavePolicyAsync(a.WithKey("save-1"), "{ }", Now, default);
        again.Status.Should().Be(FencedStatus.Duplicate);
        again.Revision.Should().Be(first.Revision);
        again.Detail.Should().Be("1");
        (await store.Data.GetPolicyAsync("a", default))!.Version.Should().Be(1, "the retry was not applied");
        (await store.Data.SavePolicyAsync(a.WithKey("save-2"), "{ }", Now, default)).Value!.Version.Should().Be(2);
        (await store.Data.FindChangeAsync("a", "save-1", default))!.Revision.Should().Be(first.Revision);
        (await store.Data.FindChangeAsync("a", "never", default)).Should().BeNull();
    }

    [ContractFact]
    public async Task ALoadIsOneSnapshotWithRemovalsAfterTheFloorAndPruningRaisesTheFloor()
    {
        var store = await OpenAsync();
        await store.Data.TryCreateTailnetAsync(Tailnet("a"), default);
        var a = await store.OwnAsync("a");
        var kept = (await store.Data.InsertNodeAsync(a, Node("a", 1, "kept", 1), default)).Value.Node!;
        var removed = (await store.Data.InsertNodeAsync(a, Node("a", 2, "removed", 2), default)).Value.Node!;
        await store.Data.SavePolicyAsync(a, "{}", Now, default);
        var deletion = await store.Data.DeleteNodeAsync(a, removed.Id, default);

        var state = (await store.Data.LoadTailnetAsync("a", default))!;
        state.Tailnet.Name.Should().Be("a");
        state.Nodes.Select(node => node.Id).Should().Equal(kept.Id);
        state.Policy!.Revision.Should().Be(3);
        state.Removals.Should().Equal((removed.Id, deletion.Revision));
        state.Revision.Should().Be(4);
        state.LogFloor.Should().Be(0);

        (await store.Data.PruneChangesAsync(TimeSpan.FromHours(1), 0, default)).Should().Be(0, "nothing is an hour old");
        (await store.Data.PruneChangesAsync(TimeSpan.FromMilliseconds(-1000), 1, default)).Should().Be(3, "all but the newest entry");
        state = (await store.Data.LoadTailnetAsync("a", default))!;
        state.LogFloor.Should().Be(3);
        state.Removals.Should().Equal((removed.Id, deletion.Revision));
        (await store.Data.ListChangesAsync("a", 0, 10, default)).Single().Revision.Should().Be(4);
    }

    protected static StoredTailnet Tailnet(string name) => new(name, $"{name}.meshnet.internal", Now, TimeSpan.FromDays(180));

    protected static StoredAuthKey Key(string id, string tailnet, bool reusable) =>
        new(id, tailnet, new byte[32], reusable, false, [], Now, Now.AddDays(1), 0, false, "");

    protected static byte[] KeyBytes(byte seed) => Enumerable.Repeat(seed, 32).ToArray();

    protected static StoredNode Node(string tailnet, byte key, string name, uint address) =>
        new(0, tailnet, KeyBytes(key), name, name, AddressAllocator.ToIPv4(0x6440_0000 + address),
            AddressAllocator.ToIPv6(0x6440_0000 + address), [], false, Now.AddDays(180), Now, null, null);

    private static async Task<NodeInsertOutcome> Insert(ContractStore store, TailnetFence fence, StoredNode node) =>
        (await store.Data.InsertNodeAsync(fence, node, default)).Value.Outcome;
}
