using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 1: a planned migration of a tailnet with 200 connected nodes while two of them move data
/// over TCP: the transfer arrives intact, every node continues on the target with contiguous
/// sequences and no full netmap.
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class PlannedMigrationTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [PostgresFact]
    public async Task TwoHundredNodesFollowAPlannedMoveWithoutAFullNetmapWhileATransferRunsIntact()
    {
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3);
        var key = await deployment.CreateTailnetAsync("big");
        await using var fleet = await NodeFleet.JoinAsync(deployment, key, 200);
        await using var pair = await DataPlanePair.StartAsync(deployment, key);
        int total = fleet.Nodes.Count + 2;
        await fleet.WaitAllAsync(node => node.PeerCount == total - 1, "every other node in its netmap");

        var source = await deployment.OwnerAsync("big");
        var target = deployment.Servers.First(server => server != source.Server);
        using var transferTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var transfer = pair.TransferAsync(32L << 20, TimeSpan.FromSeconds(4), transferTimeout.Token);
        await Task.Delay(TimeSpan.FromSeconds(1)); // the transfer is under way when the move starts

        var moved = await deployment.Admin(source.Server).MoveTailnetAsync(
            new MoveTailnetRequest { Tailnet = "big", TargetServer = target.ServerId }, ShardedDeployment.AdminHeaders(),
            deadline: DateTime.UtcNow.AddSeconds(30));
        moved.ToServer.Should().Be(target.ServerId);
        moved.Epoch.Should().Be(source.Epoch + 1);

        await fleet.WaitAllAsync(node => !node.InGap && node.Epoch == moved.Epoch && node.Events[^1].Server.TrimEnd('/') == target.Url,
            "resumed on the target");
        var done = await transfer;
        done.Received.Should().Equal(done.Sent, "the data plane never depended on the coordination service");

        var gaps = fleet.Nodes.Select(node => node.Gaps[^1]).ToList();
        output.WriteLine($"planned migration of 200 nodes: frozen {moved.Frozen.ToTimeSpan().TotalMilliseconds:0} ms, " +
            $"{moved.StreamsRedirected} streams redirected; control gap {Percentiles.Summary(gaps)}; longest data-plane stall {done.LongestStall.TotalMilliseconds:0} ms");
        fleet.Problems().Should().BeEmpty("every node continues its sequence on the target without a full netmap");
        fleet.Nodes.Should().OnlyContain(node => node.StaleEpochRefused == 0);
        moved.StreamsRedirected.Should().BeGreaterThanOrEqualTo(200);

        // The move is an incident of its own: every affected node came back.
        var incident = (await deployment.IncidentsAsync()).First(item => item.Cause == "planned-move");
        output.WriteLine($"incident: {incident.NodesAffected} nodes affected of {incident.NodesTotal}, severity {incident.Severity}, " +
            $"{incident.GapNodeSeconds:0.0} node-seconds");
        incident.NodesAffected.Should().BeGreaterThanOrEqualTo(200);
    }
}
