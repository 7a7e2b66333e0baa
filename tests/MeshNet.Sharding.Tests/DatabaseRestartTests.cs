using System.Globalization;
using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 5: PostgreSQL restarted with <c>pg_ctl restart -m immediate</c> (a crash and recovery)
/// under three servers, each owning a tailnet: the servers reconnect, every owner keeps its tailnet
/// (the sticky period after a database start gives previous owners the first chance), no epoch goes
/// backwards, acknowledged policy saves survive, and traffic between two nodes never stops.
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class DatabaseRestartTests(PostgresFixture postgres, ITestOutputHelper output)
{
    [PostgresFact]
    public async Task AfterAnImmediateRestartOfPostgresOwnersKeepTheirTailnetsAndTrafficNeverStops()
    {
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3);
        var names = new[] { "d0", "d1", "d2" };
        var fleets = new List<NodeFleet>();
        var keys = new List<string>();
        try
        {
            for (int i = 0; i < names.Length; i++)
            {
                keys.Add(await deployment.CreateTailnetAsync(names[i]));
                // One tailnet on each server.
                if ((await deployment.OwnerAsync(names[i])).Server != deployment.Servers[i])
                {
                    await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = names[i], TargetServer = deployment.Servers[i].ServerId },
                        ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                }
                fleets.Add(await NodeFleet.JoinAsync(deployment, keys[i], 10, $"{names[i]}-n"));
            }
            await using var pair = await DataPlanePair.StartAsync(deployment, keys[0]);
            var before = new Dictionary<string, TailnetLease>();
            foreach (var name in names)
            {
                before[name] = await deployment.LeaseAsync(name);
            }
            for (int i = 0; i < names.Length; i++)
            {
                before[names[i]].Owner.Should().Be(deployment.Servers[i].ServerId);
            }

            var writer = new PolicyWriter(deployment, "d1");
            using var stopWriting = new CancellationTokenSource();
            var writing = writer.RunAsync(TimeSpan.FromMilliseconds(100), stopWriting.Token);
            using var transferTimeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var transfer = pair.TransferAsync(32L << 20, TimeSpan.FromSeconds(10), transferTimeout.Token);
            await Task.Delay(TimeSpan.FromSeconds(2));

            var restartStarted = DateTimeOffset.UtcNow;
            await postgres.Cluster.RestartAsync("immediate");
            var restarted = DateTimeOffset.UtcNow - restartStarted;

            var done = await transfer;
            done.Received.Should().Equal(done.Sent, "the data plane does not depend on the database");
            done.LongestStall.Should().BeLessThan(TimeSpan.FromSeconds(1), "traffic between the nodes never stops");

            // Every server live again; every owner kept its tailnet, under an epoch no lower than before.
            await WaitAsync(async () =>
            {
                var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
                return servers.Servers.All(server => server.Live && server.HeartbeatAge.ToTimeSpan() < deployment.LeaseTtl);
            }, "every server reconnected");
            var after = new Dictionary<string, TailnetLease>();
            foreach (var name in names)
            {
                after[name] = await deployment.LeaseAsync(name);
                after[name].Owner.Should().Be(before[name].Owner, $"{name} stays with its owner across the database restart");
                after[name].Epoch.Should().BeGreaterThanOrEqualTo(before[name].Epoch, "no epoch goes backwards");
            }
            foreach (var (fleet, name) in fleets.Zip(names))
            {
                await fleet.WaitAllAsync(node => !node.InGap && node.Epoch == after[name].Epoch, $"{name} streaming again");
            }
            await stopWriting.CancelAsync();
            await writing;

            output.WriteLine($"PostgreSQL restarted (-m immediate) in {restarted.TotalMilliseconds:0} ms; longest data-plane stall " +
                $"{done.LongestStall.TotalMilliseconds:0} ms; epochs {string.Join(", ", names.Select(n => $"{n} {before[n].Epoch}->{after[n].Epoch}"))}; " +
                $"control gaps {Percentiles.Summary([.. fleets.SelectMany(f => f.Nodes).SelectMany(n => n.Gaps)])}; {writer.Acknowledged.Count} policy saves acknowledged");
            fleets.SelectMany(fleet => fleet.Problems(allowFullMaps: true)).Should().BeEmpty("sequences stay contiguous and epochs never go back");
            var audit = await ChangeLogAudit.ReadAsync(deployment.ConnectionString);
            audit.Problems().Should().BeEmpty();
            foreach (var (saveKey, version) in writer.Acknowledged)
            {
                audit.WithKey("d1", saveKey)?.Detail.Should().Be(version.ToString(CultureInfo.InvariantCulture), $"the acknowledged save {saveKey} survived the crash");
                audit.WithKey("d1", saveKey).Should().NotBeNull($"the acknowledged save {saveKey} survived the crash");
            }
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
