using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 4: the owner cut off from PostgreSQL by iptables (its packets to the database dropped, so
/// its statements hang rather than fail): it stops serving within the lease TTL on its own clock,
/// a standby takes its tailnet over and the nodes resume there; once the cut is lifted it becomes a
/// live server again.
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class CutOffTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [PostgresFact(NeedsIptables = true)]
    public async Task AnOwnerCutOffFromPostgresStopsServingWithinTheTtlAndAStandbyTakesOver()
    {
        // The victim (s1) runs under a uid of its own so that one rule cuts exactly it off.
        int uid = 61000 + Environment.ProcessId % 4000;
        // The owner stops serving by TTL - margin/2 after its last renewal was sent; a margin of a
        // quarter of the TTL leaves room for timers running late on a loaded machine.
        var tuning = new Dictionary<string, string> { ["LeaseSafetyMargin"] = CoordinatorProcess.Duration(TimeSpan.FromMilliseconds(500)) };
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3, tuning, uidOf: index => index == 0 ? uid : null);
        var victim = deployment.Servers[0];
        var key = await deployment.CreateTailnetAsync("c");
        if ((await deployment.OwnerAsync("c")).Server != victim)
        {
            await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = "c", TargetServer = victim.ServerId },
                ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
        }
        await using var fleet = await NodeFleet.JoinAsync(deployment, key, 20);
        var before = await deployment.OwnerAsync("c");
        before.Server.Should().Be(victim);
        await fleet.WaitAllAsync(node => node.Epoch == before.Epoch && !node.InGap && node.Server.ToString().TrimEnd('/') == victim.Url,
            "streaming from the victim");
        var ttl = deployment.LeaseTtl;

        DateTimeOffset cutAt;
        await using (var cut = await LoopbackFirewallRule.CutAsync(uid, postgres.Cluster.Port))
        {
            cutAt = DateTimeOffset.UtcNow;
            await fleet.WaitAllAsync(node => node.Epoch > before.Epoch && !node.InGap, "resumed on a standby", ttl + TimeSpan.FromSeconds(30));

            // It stopped serving on its own: each node's stream from it ended within the TTL of the cut.
            var stopped = fleet.Nodes.Select(node => node.Failures.First(f => f.At >= cutAt && f.What.StartsWith(victim.Url, StringComparison.Ordinal)).At - cutAt)
                .ToList();
            var resumed = fleet.Nodes.Select(node => node.Events.First(e => e.Epoch > before.Epoch).At - cutAt).ToList();
            var after = await deployment.OwnerAsync("c", not: victim.ServerId);
            output.WriteLine($"cut off at TTL {ttl.TotalSeconds:0.#} s: streams ended by {victim.ServerId} after {Percentiles.Summary(stopped)}; " +
                $"resumed on {after.Server.ServerId} (epoch {after.Epoch}) after {Percentiles.Summary(resumed)}");
            stopped.Max().Should().BeLessThan(ttl, "the cut-off owner stops serving before its lease can expire (cut at {0:HH:mm:ss.fff}; its lease log: {1})",
                cutAt, string.Join(" | ", victim.Process.Lines.Where(line => line.Contains("LeaseKeeper", StringComparison.Ordinal)).TakeLast(12)));
            after.Epoch.Should().BeGreaterThan(before.Epoch);
            fleet.Nodes.Select(node => node.Failures.First(f => f.At >= cutAt && f.What.StartsWith(victim.Url, StringComparison.Ordinal)).What)
                .Should().OnlyContain(what => what.Contains(Protocol.ControlErrors.NoOwner, StringComparison.Ordinal),
                    "it ends its streams saying nobody can serve the tailnet right now, so nodes try the others");
        }

        // The cut lifted: the victim reconnects and is a live server again (serving nothing it lost).
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
            if (servers.Servers.Single(server => server.Id == victim.ServerId) is { Live: true } entry && entry.HeartbeatAge.ToTimeSpan() < ttl)
            {
                break;
            }
            DateTime.UtcNow.Should().BeBefore(deadline, "the victim comes back once it reaches PostgreSQL again");
            await Task.Delay(200);
        }
        output.WriteLine($"{victim.ServerId} live again {(DateTimeOffset.UtcNow - cutAt).TotalSeconds:0.0} s after the cut");
        fleet.Problems(allowFullMaps: true).Should().BeEmpty("sequences stay contiguous and epochs never go back");
        (await ChangeLogAudit.ReadAsync(deployment.ConnectionString)).Problems().Should().BeEmpty();
    }
}
