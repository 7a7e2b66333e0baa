using System.Text.Json;
using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 3: the owner of busy tailnets stopped (SIGSTOP) for twice the lease TTL and continued
/// (SIGCONT): standbys took its tailnets before it came back, it serves nothing under the lease it
/// lost, the writes it had under way when it stopped are refused by their epoch in the database
/// (counted), and no node applies a message of an older epoch than one it has seen.
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class PauseTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const int Tailnets = 6;
    private const int NodesPerTailnet = 8;
    private const int MaxPauses = 8;

    [PostgresFact]
    public async Task AnOwnerPausedForTwiceTheTtlStopsServingAndItsLateWritesAreRefusedByEpoch()
    {
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3);
        var ttl = deployment.LeaseTtl;
        var names = Enumerable.Range(0, Tailnets).Select(i => $"p{i}").ToList();
        var fleets = new List<NodeFleet>();
        try
        {
            foreach (var name in names)
            {
                fleets.Add(await NodeFleet.JoinAsync(deployment, await deployment.CreateTailnetAsync(name), NodesPerTailnet, $"{name}-n"));
            }
            var nodes = fleets.SelectMany(fleet => fleet.Nodes).ToList();
            var victim = deployment.Servers[0];
            long fenced = 0;
            int pauses = 0;
            while (fenced == 0 && pauses < MaxPauses)
            {
                pauses++;
                // Every tailnet on the victim, every node streaming from it.
                foreach (var name in names)
                {
                    var owner = await deployment.OwnerAsync(name);
                    if (owner.Server != victim)
                    {
                        await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = name, TargetServer = victim.ServerId },
                            ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                    }
                }
                var before = new Dictionary<string, ulong>();
                foreach (var name in names)
                {
                    before[name] = (await deployment.LeaseAsync(name)).Epoch;
                }
                foreach (var (fleet, name) in fleets.Zip(names))
                {
                    await fleet.WaitAllAsync(node => node.Epoch == before[name] && !node.InGap, $"{name} streaming from {victim.ServerId}");
                }

                // As much write load as the nodes and an administrator can make, then the stop.
                var writers = names.Select(name => new PolicyWriter(deployment, name)).ToList();
                using var stopWriting = new CancellationTokenSource();
                var writing = Task.WhenAll(writers.Select(writer => writer.RunAsync(TimeSpan.Zero, stopWriting.Token)));
                await using (var churn = new EndpointChurn(nodes))
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(700 + Random.Shared.Next(400)));
                    victim.Pause();
                    var pausedAt = DateTimeOffset.UtcNow;
                    await Task.Delay(2 * ttl);
                    foreach (var name in names)
                    {
                        var lease = await deployment.LeaseAsync(name);
                        lease.Owner.Should().NotBe(victim.ServerId, $"a standby took {name} before the paused owner continued");
                        lease.Epoch.Should().BeGreaterThan(before[name]);
                    }
                    victim.Resume();
                    var resumedAt = DateTimeOffset.UtcNow;

                    foreach (var (fleet, name) in fleets.Zip(names))
                    {
                        await fleet.WaitAllAsync(node => node.Epoch > before[name] && !node.InGap, $"{name} resumed on a standby");
                    }
                    // It served nothing under the lease it lost: what nodes still got from it once it
                    // continued is history committed while it held the lease (sent late), nothing newer.
                    var history = await ChangeLogAudit.ReadAsync(deployment.ConnectionString);
                    int late = 0;
                    foreach (var (fleet, name) in fleets.Zip(names))
                    {
                        long committed = history.Changes.Where(c => c.Tailnet == name && c.Epoch == (long)before[name]).Select(c => c.Revision).DefaultIfEmpty().Max();
                        foreach (var node in fleet.Nodes)
                        {
                            var fromVictim = node.Events.Where(e => e.At > resumedAt && e.Server.TrimEnd('/') == victim.Url && e.Epoch <= before[name]).ToList();
                            late += fromVictim.Count;
                            fromVictim.Where(e => e.Epoch != before[name] || (long)e.Revision > committed).Should().BeEmpty(
                                $"{node.Name} got nothing from the paused owner but changes committed under its lease (up to revision {committed})");
                        }
                    }
                    fenced = await FencedWritesAsync(deployment, victim.ServerId, pausedAt);
                    output.WriteLine($"pause {pauses}: {churn.Reported} endpoint reports acknowledged, {churn.Failed} failed; " +
                        $"{writers.Sum(w => w.Acknowledged.Count)} policy saves acknowledged; fenced writes of {victim.ServerId} so far: {fenced}; " +
                        $"{late} messages committed before the stop delivered after it; stale-epoch messages refused by nodes: {nodes.Sum(node => node.StaleEpochRefused)}");
                }
                await stopWriting.CancelAsync();
                await writing;
            }

            fenced.Should().BePositive($"the paused owner's late writes were refused by epoch (after {pauses} pauses)");
            fleets.SelectMany(fleet => fleet.Problems(allowFullMaps: true)).Should().BeEmpty("no node applied an older epoch than one it had seen");
            var audit = await ChangeLogAudit.ReadAsync(deployment.ConnectionString);
            audit.Problems().Should().BeEmpty();
        }
        finally
        {
            foreach (var fleet in fleets)
            {
                await fleet.DisposeAsync();
            }
        }
    }

    /// <summary>The victim's count of fenced writes, from the load it reports with its heartbeats (waits for one after <paramref name="since"/>).</summary>
    private static async Task<long> FencedWritesAsync(ShardedDeployment deployment, string serverId, DateTimeOffset since)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
            var server = servers.Servers.Single(entry => entry.Id == serverId);
            if (DateTimeOffset.UtcNow - server.HeartbeatAge.ToTimeSpan() > since.AddSeconds(1) || DateTime.UtcNow > deadline)
            {
                using var load = JsonDocument.Parse(server.Load.Length > 0 ? server.Load : "{}");
                return load.RootElement.TryGetProperty("fencedWrites", out var value) ? value.GetInt64() : 0;
            }
            await Task.Delay(100);
        }
    }
}
