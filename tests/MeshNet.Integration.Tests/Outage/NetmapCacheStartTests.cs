using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Integration.Tests.Infrastructure;
using static MeshNet.Integration.Tests.Infrastructure.TestTailnet;
using AdminApi = MeshNet.Control.V1.Admin;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// When a cached netmap is used and when it is not: too old, switched off, holding expired peer
/// keys; and when it is written (nothing more within the write interval, the latest netmap when
/// the node stops). Real nodes and a real coordination service.
/// </summary>
[Trait("Category", "Outage")]
public sealed class NetmapCacheStartTests
{
    private static readonly TimeSpan Timeout = TestTailnet.Timeout;

    [Fact]
    public async Task ACacheOlderThanTheMaximumAgeIsNotUsedAndTheStartFailureSaysSo()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var stores = tailnet.NewStores();
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, stores.State, stores.Netmap));
        await tailnet.StartNodeAsync(tailnet.Options("b", key, new InMemoryStateStore(), new InMemoryNetmapStore()));
        await OutageTailnet.WaitForCachedPeersAsync(a, stores.Netmap, stores.State, "b");
        await tailnet.StopControlAsync();
        await a.DisposeAsync();
        await Task.Delay(50); // the cache is now older than the maximum age below

        var logs = new RecordingLoggerFactory();
        var options = tailnet.Options("a", key, stores.State, stores.Netmap);
        options.NetmapCacheMaxAge = TimeSpan.FromMilliseconds(20);
        options.StartTimeout = TimeSpan.FromSeconds(2);
        options.LoggerFactory = logs;
        var failure = await FluentActions.Awaiting(() => MeshNode.StartAsync(options)).Should().ThrowAsync<MeshException>();

        failure.Which.ErrorCode.Should().Be(MeshErrorCode.ControlUnreachable);
        failure.Which.Message.Should().Contain("The netmap cache was not used: the cached netmap is")
            .And.Contain("older than NetmapCacheMaxAge (0.02 seconds)");
        logs.AllText.Should().MatchRegex(@"Warning 4014 Netmap cache not used: the cached netmap is \d+ seconds old, older than NetmapCacheMaxAge");
        stores.Netmap.HasNetmap.Should().BeTrue("a cache that is too old is ignored, not deleted");
    }

    [Fact]
    public async Task APeerWhoseKeyExpiredInTheCacheIsNotConfiguredAfterARestart()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var stores = tailnet.NewStores();
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, stores.State, stores.Netmap));
        // b's auth key is a one-off: once its node key expires, b cannot re-authenticate and stays expired.
        var oneOff = await tailnet.Server.CreateAuthKeyAsync("acme");
        var b = await tailnet.StartNodeAsync(tailnet.Options("b", oneOff, new InMemoryStateStore(), new InMemoryNetmapStore()));
        await WaitForPeerAsync(a, "b");

        using (var channel = GrpcChannel.ForAddress(tailnet.Url))
        {
            await new AdminApi.AdminClient(channel).ExpireNodeKeyAsync(new ExpireNodeKeyRequest { Tailnet = "acme", Id = b.NodeId },
                new Metadata { { "authorization", $"Bearer {tailnet.Server.AdminToken}" } });
        }
        await WaitUntilAsync(() => a.GetStatus().Peers.Single(peer => peer.Name == "b") is { Configured: false, KeyExpiry: { } expiry } && expiry <= DateTimeOffset.UtcNow,
            "a to see b's key expire");
        await WaitUntilAsync(() => OutageTailnet.LoadCached(stores.Netmap, stores.State)?.ToSnapshot().Peers.Values.SingleOrDefault(peer => peer.Name == "b")
            is { KeyExpiry: { } cachedExpiry } && cachedExpiry <= DateTimeOffset.UtcNow, "a's netmap cache to hold b's expired key");

        await tailnet.StopControlAsync();
        await a.DisposeAsync();
        var restarted = await tailnet.StartNodeAsync(tailnet.Options("a", null, stores.State, stores.Netmap));

        var status = restarted.GetStatus();
        status.NetmapSource.Should().Be(MeshNetmapSource.Cached);
        var peer = status.Peers.Should().ContainSingle(p => p.Name == "b").Which;
        peer.KeyExpiry.Should().BeBefore(DateTimeOffset.UtcNow);
        peer.Configured.Should().BeFalse("a key that expired is not used, even from the cache");
        var dial = await FluentActions.Awaiting(() => restarted.DialAsync("b", 80).AsTask()).Should().ThrowAsync<MeshException>();
        dial.Which.ErrorCode.Should().Be(MeshErrorCode.HostUnreachable);
    }

    [Fact]
    public async Task SwitchingTheCacheOffDeletesTheStoredNetmapAndNothingIsSavedAgain()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var stores = tailnet.NewStores();
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, stores.State, stores.Netmap));
        await TestTailnet.WaitUntilAsync(() => stores.Netmap.HasNetmap, "a to cache its netmap");
        await a.DisposeAsync();

        var options = tailnet.Options("a", key, stores.State, stores.Netmap);
        options.UseNetmapCache = false;
        var again = await tailnet.StartNodeAsync(options);
        stores.Netmap.HasNetmap.Should().BeFalse("UseNetmapCache = false deletes what the store holds");
        again.GetStatus().NetmapSource.Should().Be(MeshNetmapSource.Live);

        await tailnet.StartNodeAsync(tailnet.Options("b", key, new InMemoryStateStore(), new InMemoryNetmapStore()));
        await WaitForPeerAsync(again, "b");
        await again.DisposeAsync();
        stores.Netmap.HasNetmap.Should().BeFalse("nothing is saved while the cache is off");
    }

    [Fact]
    public async Task APolicyThatForbidsTheCacheForATagDeletesThoseNodesCopiesOnly()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var kioskKey = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, tags: ["tag:kiosk"]);
        var officeKey = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, user: "alice@example.com");
        var kioskStores = tailnet.NewStores();
        var officeStores = tailnet.NewStores();
        var kiosk = await tailnet.StartNodeAsync(tailnet.Options("kiosk", kioskKey, kioskStores.State, kioskStores.Netmap));
        var office = await tailnet.StartNodeAsync(tailnet.Options("office", officeKey, officeStores.State, officeStores.Netmap));
        await OutageTailnet.WaitForCachedPeersAsync(kiosk, kioskStores.Netmap, kioskStores.State, "office");
        await OutageTailnet.WaitForCachedPeersAsync(office, officeStores.Netmap, officeStores.State, "kiosk");

        ulong version = await tailnet.Server.SetPolicyAsync("acme", """
            {
              "tagOwners": { "tag:kiosk": ["admin@example.com"] },
              "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ],
              // Kiosks may be stolen: they keep nothing about the tailnet on disk.
              "netmapCache": { "forbid": ["tag:kiosk"] },
            }
            """);
        await TestTailnet.WaitUntilAsync(() => !kioskStores.Netmap.HasNetmap, "the kiosk's cached netmap to be deleted");
        await TestTailnet.WaitUntilAsync(() => office.GetStatus().PolicyVersion >= version, "office to apply the policy");
        // The cache writer runs after the netmap is applied: wait until it has handled the netmap
        // office now runs on (it would have deleted the copy instead, had it wrongly applied the ban).
        ulong applied = office.GetStatus().NetmapSequence;
        await TestTailnet.WaitUntilAsync(() => OutageTailnet.LoadCached(officeStores.Netmap, officeStores.State) is { } cached && cached.Sequence >= applied,
            $"office's netmap cache to hold the netmap of sequence {applied} or later");
        officeStores.Netmap.HasNetmap.Should().BeTrue("the policy forbids the cache to tag:kiosk only");
        OutageTailnet.LoadCached(officeStores.Netmap, officeStores.State)!.PolicyVersion.Should().BeGreaterThanOrEqualTo(version,
            "office's copy was written after the policy, not left over from before it");

        await kiosk.DisposeAsync();
        kioskStores.Netmap.HasNetmap.Should().BeFalse("nothing is saved while the service forbids it, not even when the node stops");
    }

    [Fact]
    public async Task WithinTheWriteIntervalNothingMoreIsWrittenAndDisposingTheNodeWritesTheLatestNetmap()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        using var state = new InMemoryStateStore();
        var store = new CountingNetmapStore();
        var options = tailnet.Options("a", key, state, store);
        options.NetmapCacheWriteInterval = TimeSpan.FromHours(1);
        var a = await tailnet.StartNodeAsync(options);
        await TestTailnet.WaitUntilAsync(() => store.Saves == 1, "the first netmap to be saved");

        // A burst of changes: three nodes join.
        foreach (var name in new[] { "b", "c", "d" })
        {
            await tailnet.StartNodeAsync(tailnet.Options(name, key, new InMemoryStateStore(), new InMemoryNetmapStore()));
        }
        await WaitUntilAsync(() => a.GetStatus().Peers.Count == 3, "a to see the three new nodes");
        await Task.Delay(200);
        store.Saves.Should().Be(1, "changes within the write interval are not written yet");

        await a.DisposeAsync();
        store.Saves.Should().Be(2, "the latest netmap is written when the node stops");
        using var identity = await state.LoadAsync();
        var cached = await store.LoadAsync(identity!);
        cached!.PeerCount.Should().Be(3);
    }

    /// <summary>An <see cref="IMeshNetmapStore"/> that counts saves and keeps the netmap in an <see cref="InMemoryNetmapStore"/>.</summary>
    private sealed class CountingNetmapStore : IMeshNetmapStore
    {
        private readonly InMemoryNetmapStore _inner = new();
        private int _saves;

        public int Saves => Volatile.Read(ref _saves);

        public ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default) =>
            _inner.LoadAsync(identity, cancellationToken);

        public ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _saves);
            return _inner.SaveAsync(identity, netmap, cancellationToken);
        }

        public ValueTask DeleteAsync(CancellationToken cancellationToken = default) => _inner.DeleteAsync(cancellationToken);
    }
}
