using System.Globalization;
using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 9: every server restarted in turn the way an upgrade does it, drained first
/// (<c>DrainServer</c> moves its tailnets away), then stopped, then started again: no node sees a
/// control gap over one second, sequences stay contiguous without full netmaps, and the policy
/// saves acknowledged throughout are all there.
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class RollingRestartTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [PostgresFact]
    public async Task DrainingEachServerBeforeRestartingItKeepsEveryControlGapUnderOneSecond()
    {
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3);
        var names = Enumerable.Range(0, 6).Select(i => $"u{i}").ToList();
        var fleets = new List<NodeFleet>();
        try
        {
            for (int i = 0; i < names.Count; i++)
            {
                var key = await deployment.CreateTailnetAsync(names[i]);
                var server = deployment.Servers[i % deployment.Servers.Count];
                if ((await deployment.OwnerAsync(names[i])).Server != server)
                {
                    await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = names[i], TargetServer = server.ServerId },
                        ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                }
                fleets.Add(await NodeFleet.JoinAsync(deployment, key, 12, $"{names[i]}-n"));
            }
            foreach (var fleet in fleets)
            {
                await fleet.WaitAllAsync(node => node.PeerCount == fleet.Nodes.Count - 1, "every peer known");
            }
            var writer = new PolicyWriter(deployment, "u0");
            using var stopWriting = new CancellationTokenSource();
            var writing = writer.RunAsync(TimeSpan.FromMilliseconds(100), stopWriting.Token);

            var report = new List<string>();
            foreach (var server in deployment.Servers.ToList())
            {
                var started = DateTime.UtcNow;
                var drained = await deployment.Admin(server).DrainServerAsync(new DrainServerRequest { Server = server.ServerId },
                    ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddMinutes(1));
                drained.Failed.Should().BeEmpty($"every tailnet of {server.ServerId} moves away");
                var leases = await deployment.CallAsync(admin => admin.ListLeasesAsync(new ListLeasesRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
                leases.Leases.Should().NotContain(lease => lease.Owner == server.ServerId, $"{server.ServerId} serves nothing once drained");
                var drainTime = DateTime.UtcNow - started;

                await server.StopAsync();
                await server.RestartAsync();
                await WaitAsync(async () =>
                {
                    var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
                    return servers.Servers.Single(item => item.Id == server.ServerId) is { Live: true, Draining: false };
                }, $"{server.ServerId} back and taking tailnets");
                foreach (var fleet in fleets)
                {
                    await fleet.WaitAllAsync(node => !node.InGap, "every node streaming");
                }
                report.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{server.ServerId}: drained in {drainTime.TotalMilliseconds:0} ms ({drained.Moved.Count} tailnets: " +
                    $"{string.Join(", ", drained.Moved.Select(move => $"{move.Tailnet} to {move.ToServer} frozen {move.Frozen.ToTimeSpan().TotalMilliseconds:0} ms"))}), " +
                    $"restarted in {(DateTime.UtcNow - started - drainTime).TotalMilliseconds:0} ms"));
            }
            await stopWriting.CancelAsync();
            await writing;

            var gaps = fleets.SelectMany(fleet => fleet.Nodes).SelectMany(node => node.Gaps).ToList();
            foreach (var line in report)
            {
                output.WriteLine(line);
            }
            output.WriteLine($"control gaps over the rolling restart: {Percentiles.Summary(gaps)}; {writer.Acknowledged.Count} policy saves acknowledged");
            foreach (var node in fleets.SelectMany(fleet => fleet.Nodes).OrderByDescending(node => node.Gaps.DefaultIfEmpty().Max()).Take(3))
            {
                output.WriteLine($"  {node.Name}: gaps {string.Join(", ", node.Gaps.Select(gap => $"{gap.TotalMilliseconds:0}"))} ms; stream ends: " +
                    string.Join("; ", node.Failures.Select(failure => $"{failure.At:HH:mm:ss.fff} {failure.What}")));
            }
            gaps.Should().NotBeEmpty("every node was moved at least once");
            gaps.Should().OnlyContain(gap => gap < TimeSpan.FromSeconds(1), "no node sees a control gap over one second");
            // A node that comes back after a policy change it has not seen is sent a full netmap (a
            // catch-up does not span policy changes): u0, whose policy changes all along, may have them.
            fleets[0].Problems(allowFullMaps: true).Should().BeEmpty("sequences stay contiguous");
            fleets.Skip(1).SelectMany(fleet => fleet.Problems()).Should().BeEmpty("sequences stay contiguous, without full netmaps");

            var audit = await ChangeLogAudit.ReadAsync(deployment.ConnectionString);
            audit.Problems().Should().BeEmpty();
            foreach (var (saveKey, version) in writer.Acknowledged)
            {
                audit.WithKey("u0", saveKey)?.Detail.Should().Be(version.ToString(CultureInfo.InvariantCulture), $"the acknowledged save {saveKey} is there");
                audit.WithKey("u0", saveKey).Should().NotBeNull($"the acknowledged save {saveKey} is there");
            }
            var incidents = await deployment.IncidentsAsync();
            incidents.Should().Contain(incident => incident.Cause == "drain");
            incidents.Should().NotContain(incident => incident.Cause == "failover" || incident.Cause == "release", "no tailnet was left to expire or released");
        }
        finally
        {
            foreach (var fleet in fleets)
            {
                await fleet.DisposeAsync();
            }
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!await condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, what);
            await Task.Delay(100);
        }
    }
}
