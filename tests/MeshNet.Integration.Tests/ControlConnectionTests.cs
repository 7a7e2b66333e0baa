using System.Net;
using MeshNet.Control.V1;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests;

/// <summary>The node's control connection: resuming the netmap stream after the connection drops.</summary>
[Trait("Category", "Integration")]
public sealed class ControlConnectionTests
{
    [Fact]
    public async Task AfterADroppedControlConnectionTheNodeResumesItsStreamWithOnlyTheDeltasItMissed()
    {
        await using var tailnet = await TestTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var serverUri = new Uri(tailnet.Server.Url);
        var proxy = tailnet.Own(new CuttableTcpProxy(new IPEndPoint(IPAddress.Parse(serverUri.Host), serverUri.Port)));
        var counters = tailnet.Server.Counters;

        // "a" reaches the service through the proxy; the others directly.
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, controlUrl: proxy.Url));
        var b = await tailnet.StartNodeAsync("b", key);
        await TestTailnet.WaitUntilAsync(() => a.GetStatus().Peers.Any(peer => peer is { Name: "b", Online: true }), "a to see b online");
        ulong sequenceBefore = a.GetStatus().NetmapSequence;
        long streamsOpened = counters.MapStreamsOpened;

        // Cut: every connection through the proxy is reset, and new ones too for now.
        proxy.Cut();
        await TestTailnet.WaitUntilAsync(() => !a.GetStatus().ControlConnected && counters.MapStreamsActive == 1,
            "a's stream to end on both sides");
        a.GetStatus().LastControlError.Should().Be(MeshErrorCode.ControlUnreachable);

        // What a misses meanwhile: c joins and comes online.
        var c = await tailnet.StartNodeAsync("c", key);
        await TestTailnet.WaitUntilAsync(() => b.GetStatus().Peers.Any(peer => peer is { Name: "c", Online: true }), "b to see c online");
        long fullMaps = counters.FullMapsSent;
        long resumed = counters.StreamsResumed;
        proxy.Accepted.Should().BeGreaterThan(0, "the proxy saw the connections it cut");

        // Restore: a reconnects by itself and resumes its session from the service's replay buffer.
        proxy.Restore();
        await TestTailnet.WaitUntilAsync(() => a.GetStatus().ControlConnected && a.GetStatus().Peers.Any(peer => peer is { Name: "c", Online: true }),
            "a to reconnect and learn about c");
        counters.StreamsResumed.Should().Be(resumed + 1, "the stream resumed with its session and last sequence");
        counters.FullMapsSent.Should().Be(fullMaps, "a resume sends only what was missed, no full netmap");
        counters.MapStreamsOpened.Should().BeGreaterThan(streamsOpened);
        a.GetStatus().NetmapSequence.Should().BeGreaterThan(sequenceBefore, "the missed deltas were applied in the same session");

        // A change made after the cut reaches a over the resumed stream: an administrator deletes c.
        var cId = c.NodeId;
        await tailnet.Admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "acme", Id = cId }, tailnet.AdminHeaders);
        await TestTailnet.WaitUntilAsync(() => a.GetStatus().Peers.All(peer => peer.NodeId != cId), "a to see c removed");
        counters.FullMapsSent.Should().Be(fullMaps);

        // And the data plane never noticed: a dials b by name.
        await using var listener = await b.ListenAsync(4000);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await a.DialAsync("b", 4000).AsTask().WaitAsync(TestTailnet.Timeout);
        await using var accepted = await accepting.WaitAsync(TestTailnet.Timeout);
        (await TestTailnet.ExchangeAsync(dialed, accepted, "resumed")).Should().Be("resumed");
    }
}
