using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.Coordination.Tests.Integration;

/// <summary>
/// Group commit of live state (<see cref="LiveStateWriter"/>): the attaches, endpoint reports and
/// stream ends of a tailnet that queue while its write gate is busy are written in one fenced
/// write, published, and only then are the streams attached. The tests hold the write gate
/// themselves so that the requests queue deterministically.
/// </summary>
[Trait("Category", "Integration")]
public sealed class LiveStateBatchTests
{
    [Fact]
    public async Task ConcurrentAttachesOfOneTailnetAreWrittenInOneBatchAndEachFullNetmapShowsItsNodeOnline()
    {
        const int count = 24;
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var nodes = new List<(NodeClient Client, ulong Id)>();
        for (int i = 0; i < count; i++)
        {
            var (client, response) = await harness.JoinAsync(key, $"node{i}");
            nodes.Add((client, response.Self.Id));
        }
        var endpointOf = nodes.Select((node, i) => (node.Id, Endpoint: $"192.0.2.{i + 1}:41641")).ToDictionary(pair => pair.Id, pair => pair.Endpoint);
        var hub = harness.Server.Services.GetRequiredService<TailnetHub>();
        var writer = hub.LiveStateFor("acme");
        var counters = harness.Server.Counters;
        var (batches, writes) = (counters.LiveStateBatches, counters.LiveStateWrites);

        var maps = new List<MapStreamReader>();
        ulong revision;
        using (var scope = (await hub.LockAsync("acme", default))!)
        {
            // Another writer holds the tailnet's write gate: every attach queues behind it.
            revision = scope.Bus.Revision;
            maps.AddRange(nodes.Select(node => node.Client.Map(endpoints: endpointOf[node.Id])));
            await WaitUntilAsync(() => writer.Queued == count);
        }
        try
        {
            var firsts = await Task.WhenAll(maps.Select(map => map.NextAsync()));
            for (int i = 0; i < count; i++)
            {
                var full = firsts[i].Full;
                full.Should().NotBeNull("a new stream starts with a full netmap");
                full.Self.Id.Should().Be(nodes[i].Id);
                full.Self.Online.Should().BeTrue("its own live state was published before its stream attached");
                full.Self.Endpoints.Should().Equal(endpointOf[nodes[i].Id]);
                full.Peers.Should().HaveCount(count - 1);
                foreach (var peer in full.Peers)
                {
                    peer.Online.Should().BeTrue("the whole batch was published before its first stream attached");
                    peer.Endpoints.Should().Equal(endpointOf[peer.Id]);
                }
            }
            (counters.LiveStateWrites - writes).Should().Be(count);
            (counters.LiveStateBatches - batches).Should().Be(1, "the attaches that queued together are one fenced write").And.BeLessThan(count);
            var changes = await harness.Server.Services.GetRequiredService<ICoordinationStore>().ListChangesAsync("acme", revision, 100, default);
            changes.Should().ContainSingle("one write, one revision").Which.Should().Match<StoredChange>(change =>
                change.Kind == ChangeKinds.LiveState && change.Detail == count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        finally
        {
            maps.ForEach(map => map.Dispose());
        }
    }

    [Fact]
    public async Task AnAttachAndAnEndpointReportOfOneNodeInOneBatchAreOneRecordWithTheLastEndpoints()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        var (bob, _) = await harness.JoinAsync(key, "bob");
        using var bobMap = bob.Map(endpoints: "198.51.100.2:41641");
        await bobMap.NextAsync();
        var hub = harness.Server.Services.GetRequiredService<TailnetHub>();
        var writer = hub.LiveStateFor("acme");
        var counters = harness.Server.Counters;
        var (batches, writes) = (counters.LiveStateBatches, counters.LiveStateWrites);

        MapStreamReader aliceMap;
        Task report;
        using (await hub.LockAsync("acme", default))
        {
            aliceMap = alice.Map(endpoints: "192.0.2.1:1");
            await WaitUntilAsync(() => writer.Queued == 1);
            report = alice.UpdateEndpointsAsync("192.0.2.1:2");
            await WaitUntilAsync(() => writer.Queued == 2);
        }
        using (aliceMap)
        {
            await report;
            var self = (await aliceMap.NextAsync()).Full.Self;
            self.Online.Should().BeTrue();
            self.Endpoints.Should().Equal("192.0.2.1:2");
            var patch = (await bobMap.NextDeltaAsync()).Patches.Single();
            patch.Id.Should().Be(aliceSelf.Self.Id);
            patch.Online.Should().BeTrue();
            patch.Endpoints.Values.Should().Equal("192.0.2.1:2"); // the last state queued wins
            (counters.LiveStateBatches - batches).Should().Be(1);
            (counters.LiveStateWrites - writes).Should().Be(1, "one node, one record");
        }
    }

    [Fact]
    public async Task AStreamEndQueuedAfterTheSameNodesNewStreamDoesNotTakeItOffline()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        var (bob, _) = await harness.JoinAsync(key, "bob");
        using var bobMap = bob.Map(endpoints: "198.51.100.2:41641");
        await bobMap.NextAsync();
        var first = alice.Map(endpoints: "192.0.2.1:1");
        await first.NextAsync();
        (await bobMap.NextDeltaAsync()).Patches.Single().Online.Should().BeTrue();
        var hub = harness.Server.Services.GetRequiredService<TailnetHub>();
        var writer = hub.LiveStateFor("acme");

        MapStreamReader second;
        using (await hub.LockAsync("acme", default))
        {
            // Alice reconnects (same endpoints, nothing to write), and her old stream's end is
            // queued after that: the batch must not write her offline.
            second = alice.Map(endpoints: "192.0.2.1:1");
            await WaitUntilAsync(() => writer.Queued == 1);
            first.Dispose();
            await WaitUntilAsync(() => writer.Queued == 2);
        }
        using (second)
        {
            (await second.NextAsync()).Full.Self.Online.Should().BeTrue();
            await WaitUntilAsync(() => writer.IsIdle);
            var bus = hub.TryGetLoaded("acme")!;
            bus.IsOnline(aliceSelf.Self.Id).Should().BeTrue();
            bus.HasLiveStream(aliceSelf.Self.Id).Should().BeTrue();

            // The next thing Bob hears of Alice is a change she makes, not that she went offline.
            await alice.UpdateEndpointsAsync("192.0.2.1:9");
            var patch = (await bobMap.NextDeltaAsync()).Patches.Single();
            patch.HasOnline.Should().BeFalse();
            patch.Endpoints.Values.Should().Equal("192.0.2.1:9");
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should hold soon");
            await Task.Delay(10);
        }
    }
}
