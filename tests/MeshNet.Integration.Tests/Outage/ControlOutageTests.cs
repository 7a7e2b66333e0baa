using System.Diagnostics;
using MeshNet.Integration.Tests.Infrastructure;
using MeshNet.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using static MeshNet.Integration.Tests.Infrastructure.TestTailnet;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// The promise, with real nodes (WireGuard over loopback UDP) and a real coordination
/// service that is stopped and started again: nothing in the data plane depends on coordination
/// being up; a node restarts and reaches its peers without it; when it returns the nodes
/// reconnect by themselves and hear changes at once.
/// </summary>
[Trait("Category", "Outage")]
public sealed class ControlOutageTests
{
    /// <summary>The acceptance bound for reaching a peer after a restart from the cache (not a benchmark).</summary>
    private static readonly TimeSpan ReachBound = TimeSpan.FromSeconds(2);

    /// <summary>The bound for a policy change to reach every node once coordination is back.</summary>
    private static readonly TimeSpan PolicyBound = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan Timeout = TestTailnet.Timeout;

    [Fact]
    public async Task WithCoordinationStoppedAnOpenStreamKeepsFlowingAndNewConnectionsAndHttpWork()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var (a, b, _) = await StartPairAsync(tailnet);
        await using var listener = await a.ListenAsync(5000);
        var accepting = listener.AcceptAsync().AsTask();
        await using var open = await b.DialAsync("a", 5000).AsTask().WaitAsync(Timeout);
        await using var openAtA = await accepting.WaitAsync(Timeout);
        var app = tailnet.Own(await MeshWebApp.StartAsync(a, 8080, web => web.MapGet("/hello", (HttpContext context) => $"hello {context.GetMeshPeer()!.Name}")));

        await tailnet.StopControlAsync();
        await WaitUntilAsync(() => !a.GetStatus().ControlConnected && !b.GetStatus().ControlConnected, "the nodes to notice the outage");

        // Ten seconds of traffic both ways on the connection opened before the outage: every message arrives.
        int exchanged = 0;
        var flowing = Stopwatch.StartNew();
        while (flowing.Elapsed < TimeSpan.FromSeconds(10))
        {
            (await ExchangeAsync(open, openAtA, $"ping {exchanged:D4}")).Should().Be($"ping {exchanged:D4}");
            (await ExchangeAsync(openAtA, open, $"pong {exchanged:D4}")).Should().Be($"pong {exchanged:D4}");
            exchanged++;
            await Task.Delay(100);
        }
        exchanged.Should().BeGreaterThan(20, "messages went every ~100 ms for 10 s");

        // A new connection between the two known peers.
        var acceptingNew = listener.AcceptAsync().AsTask();
        await using var fresh = await b.DialAsync("a", 5000).AsTask().WaitAsync(Timeout);
        await using var freshAtA = await acceptingNew.WaitAsync(Timeout);
        (await ExchangeAsync(freshAtA, fresh, "new connection")).Should().Be("new connection");

        // HTTP to the app on the tailnet, with the caller's identity.
        using var http = new HttpClient(b.CreateHttpMessageHandler()) { Timeout = Timeout };
        (await http.GetStringAsync("http://a:8080/hello")).Should().Be("hello b");
        b.GetStatus().LastControlError.Should().Be(MeshErrorCode.ControlUnreachable);
        b.GetStatus().HealthWarnings.Should().ContainSingle().Which.Should().Contain("not connected to the coordination service");
        _ = app;
    }

    [Fact]
    public async Task ANodeRestartsWhileCoordinationIsDownAndReachesItsPeersBothWaysAtOnce()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var (a, b, storesA) = await StartPairAsync(tailnet);
        int portBefore = a.ListenPort;
        await using var listenerB = await b.ListenAsync(6000);

        await tailnet.StopControlAsync();
        await a.DisposeAsync();
        var restarted = await tailnet.StartNodeAsync(tailnet.Options("a", null, storesA.State, storesA.Netmap));
        await using var listenerA = await restarted.ListenAsync(6000);

        restarted.ListenPort.Should().Be(portBefore, "the node binds the port of its previous run, which its peers hold");
        var status = restarted.GetStatus();
        // StartAsync returned without the coordination service: from the cache, not connected.
        status.NetmapSource.Should().Be(MeshNetmapSource.Cached);
        status.ControlConnected.Should().BeFalse();
        status.Peers.Should().ContainSingle(peer => peer.Name == "b").Which.Configured.Should().BeTrue();
        status.HealthWarnings.Should().ContainSingle().Which.Should().StartWith("running on a cached netmap received");

        // The restarted node reaches its peer...
        (await TimeToExchangeAsync(restarted, listenerB, "b", "from the restarted node"))
            .Should().BeLessThan(ReachBound, "the restarted node reaches its peer at once (the issue's criterion)");

        // ...and the peer reaches it, on a connection it opens.
        (await TimeToExchangeAsync(b, listenerA, "a", "from the peer"))
            .Should().BeLessThan(ReachBound, "the peer reaches the restarted node at once (the issue's criterion)");
    }

    /// <summary>How long <paramref name="from"/> takes to dial <paramref name="to"/>, have it accepted by <paramref name="listener"/>, and exchange a message each way.</summary>
    private static async Task<TimeSpan> TimeToExchangeAsync(MeshNode from, MeshListener listener, string to, string message)
    {
        var clock = Stopwatch.StartNew();
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await from.DialAsync(to, 6000).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        (await ExchangeAsync(dialed, accepted, message)).Should().Be(message);
        (await ExchangeAsync(accepted, dialed, "answer")).Should().Be("answer");
        return clock.Elapsed;
    }

    [Fact]
    public async Task WhenCoordinationReturnsTheNodesReconnectByThemselvesAndHearAPolicyChangeAtOnce()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var (a, b, storesA) = await StartPairAsync(tailnet);
        await tailnet.StopControlAsync();
        await a.DisposeAsync();
        var restarted = await tailnet.StartNodeAsync(tailnet.Options("a", null, storesA.State, storesA.Netmap));
        restarted.GetStatus().NetmapSource.Should().Be(MeshNetmapSource.Cached);
        await WaitUntilAsync(() => restarted.GetStatus().LastControlError is not null, "the background registration to find the service down");

        await tailnet.RestartControlAsync();
        await WaitUntilAsync(() => restarted.GetStatus() is { ControlConnected: true, NetmapSource: MeshNetmapSource.Live }
            && b.GetStatus() is { ControlConnected: true, NetmapSource: MeshNetmapSource.Live }, "both nodes to reconnect and run on a live netmap");
        restarted.GetStatus().HealthWarnings.Should().BeEmpty();
        restarted.GetStatus().LastControlError.Should().BeNull("the failures while the service was down are over");
        restarted.GetStatus().Peers.Should().ContainSingle(peer => peer.Name == "b").Which.Configured.Should().BeTrue();

        var clock = Stopwatch.StartNew();
        ulong version = await tailnet.Server.SetPolicyAsync("acme", """
            { "acls": [ { "action": "accept", "src": ["alice@example.com"], "dst": ["*:*"] } ] }
            """);
        await WaitUntilAsync(() => restarted.GetStatus().PolicyVersion >= version && b.GetStatus().PolicyVersion >= version,
            $"both nodes to apply policy version {version}");
        clock.Elapsed.Should().BeLessThan(PolicyBound, "a policy change reaches every reconnected node at once (the issue's criterion)");

        // The connection still works with the new policy (alice may reach everything).
        await using var listener = await b.ListenAsync(7000);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await restarted.DialAsync("b", 7000).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        (await ExchangeAsync(dialed, accepted, "after")).Should().Be("after");
    }

    /// <summary>Two nodes of user alice, a and b, that see each other and have both cached a netmap holding the other.</summary>
    private static async Task<(MeshNode A, MeshNode B, (InMemoryStateStore State, InMemoryNetmapStore Netmap) StoresA)> StartPairAsync(OutageTailnet tailnet)
    {
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, user: "alice@example.com");
        var storesA = tailnet.NewStores();
        var storesB = tailnet.NewStores();
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, storesA.State, storesA.Netmap));
        var b = await tailnet.StartNodeAsync(tailnet.Options("b", key, storesB.State, storesB.Netmap));
        await WaitForPeerAsync(a, "b");
        await WaitForPeerAsync(b, "a");
        await OutageTailnet.WaitForCachedPeersAsync(a, storesA.Netmap, storesA.State, "b");
        await OutageTailnet.WaitForCachedPeersAsync(b, storesB.Netmap, storesB.State, "a");
        return (a, b, storesA);
    }
}
