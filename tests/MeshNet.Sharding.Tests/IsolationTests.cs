using System.Globalization;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 7: on one server, a tailnet whose nodes make changes as fast as the service lets them is
/// held to its change budget, and the other tailnets' fan-out (a change reaching every node of the
/// tailnet) keeps its p99 within 10% of what it is without the flood. The flooding nodes run in a
/// process of their own at a lower scheduling priority (they stand for other machines: their own
/// work must not weigh on the nodes measured here, only what they make the server do).
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class IsolationTests(PostgresFixture postgres, ITestOutputHelper output)
{
    /// <summary>Every tailnet's change budget: what a server sized like this machine (two cores, shared with the database and every node) can give one tailnet.</summary>
    private const double ChangesPerSecond = 25;
    private const int Rounds = 36;
    private static readonly TimeSpan Calm = TimeSpan.FromSeconds(2.5);
    private static readonly TimeSpan Flood = TimeSpan.FromSeconds(3);

    [PostgresFact]
    public async Task AFloodingTailnetIsLimitedAndTheOthersFanOutP99RisesLessThanTenPercent()
    {
        var tuning = new Dictionary<string, string>
        {
            ["TailnetChangesPerSecond"] = ChangesPerSecond.ToString(CultureInfo.InvariantCulture),
            ["TailnetChangeBurst"] = "50",
        };
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 1, tuning);
        // Six tailnets of eight nodes, each changing one endpoint every 50 ms at most (under 20
        // changes a second: well within the budget, so their own limit never delays them).
        var quiet = Enumerable.Range(0, 6).Select(i => $"q{i}").ToArray();
        var fleets = new List<NodeFleet>();
        try
        {
            foreach (var name in quiet)
            {
                fleets.Add(await NodeFleet.JoinAsync(deployment, await deployment.CreateTailnetAsync(name), 8, $"{name}-n"));
            }
            foreach (var fleet in fleets)
            {
                await fleet.WaitAllAsync(node => node.PeerCount == fleet.Nodes.Count - 1, "every peer known");
            }
            var floodKey = await deployment.CreateTailnetAsync("flood");
            await using var flood = SampleProcess.StartAssembly(SampleProcess.HostAssemblyOf("MeshNet.FloodHost"), new Dictionary<string, string>(),
                [string.Join(',', deployment.Urls), floodKey, "20", "2", "--seconds", "600"], niceness: 19);
            await flood.WaitForLineAsync("^ready$", TimeSpan.FromMinutes(2), failOn: "^flood: ");

            var probes = fleets.Select(fleet => new FanOutProbe(fleet)).ToList();
            string phase = "warm-up";
            using var stop = new CancellationTokenSource();
            var probing = Task.WhenAll(probes.Select(probe => probe.RunAsync(() => Volatile.Read(ref phase), TimeSpan.FromMilliseconds(50), stop.Token)));
            // A first flood, not measured: a cold flood host spends its burst more slowly than a
            // second, and what is left of it would count in the first round's rate (28/s once).
            int warming = flood.LineCount;
            await flood.WriteLineAsync("start");
            await Task.Delay(TimeSpan.FromSeconds(3));
            await flood.WriteLineAsync("stop");
            await flood.WaitForLineAsync("^stopped$", TimeSpan.FromSeconds(30), warming);
            await Task.Delay(TimeSpan.FromSeconds(3));
            var rates = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                // Short alternations, many of them: slow drift and rare events (a checkpoint, a
                // collection) fall on both sides alike.
                Volatile.Write(ref phase, $"calm/{round}");
                await Task.Delay(Calm);
                Volatile.Write(ref phase, "ramp");
                await flood.WriteLineAsync("start");
                await Task.Delay(TimeSpan.FromSeconds(1)); // its burst spent
                var before = await AcceptedAsync(flood);
                Volatile.Write(ref phase, $"flood/{round}");
                await Task.Delay(Flood);
                var after = await AcceptedAsync(flood);
                rates.Add((after.Count - before.Count) / ((after.AtMs - before.AtMs) / 1000.0));
                Volatile.Write(ref phase, "drain");
                int since = flood.LineCount;
                await flood.WriteLineAsync("stop");
                await flood.WaitForLineAsync("^stopped$", TimeSpan.FromSeconds(30), since);
                await Task.Delay(TimeSpan.FromSeconds(0.5));
            }
            await stop.CancelAsync();
            await probing;
            foreach (var probe in probes)
            {
                probe.Dispose();
            }

            // Fan-out: how long each node of the other tailnets took to have a change (a delivery),
            // with the flood and without it, over all rounds (printed per round too).
            var ratios = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                var calmRound = probes.SelectMany(probe => probe.Deliveries($"calm/{round}")).ToList();
                var floodRound = probes.SelectMany(probe => probe.Deliveries($"flood/{round}")).ToList();
                ratios.Add(Percentiles.Of(floodRound, 99) / Percentiles.Of(calmRound, 99));
            }

            var calm = Enumerable.Range(0, Rounds).SelectMany(round => probes.SelectMany(probe => probe.Deliveries($"calm/{round}"))).ToList();
            var flooded = Enumerable.Range(0, Rounds).SelectMany(round => probes.SelectMany(probe => probe.Deliveries($"flood/{round}"))).ToList();
            double calmP99 = Percentiles.Of(calm, 99).TotalMilliseconds, floodP99 = Percentiles.Of(flooded, 99).TotalMilliseconds;
            output.WriteLine($"flooding tailnet: {string.Join(", ", rates.Select(rate => $"{rate:0.0}"))} changes/s accepted (limit {ChangesPerSecond:0}/s)");
            output.WriteLine($"other tailnets' fan-out (change to each node) without the flood {Percentiles.Summary(calm)}; with it {Percentiles.Summary(flooded)}");
            double rise = floodP99 / calmP99 - 1;
            output.WriteLine($"p99 per round, flood / calm: {string.Join(", ", ratios.Select(ratio => $"{ratio:0.00}"))}; median {Median(ratios):0.00}");
            output.WriteLine($"all rounds: p99 {calmP99:0.00} ms -> {floodP99:0.00} ms ({rise * 100:+0.0;-0.0}%); " +
                string.Join(", ", new[] { 90, 95, 98, 99.5 }.Select(p => $"p{p} {Percentiles.Of(calm, p).TotalMilliseconds:0.0} -> {Percentiles.Of(flooded, p).TotalMilliseconds:0.0}")));
            var calmAll = Enumerable.Range(0, Rounds).SelectMany(round => probes.SelectMany(probe => probe.Samples($"calm/{round}"))).ToList();
            var floodAll = Enumerable.Range(0, Rounds).SelectMany(round => probes.SelectMany(probe => probe.Samples($"flood/{round}"))).ToList();
            output.WriteLine($"change to every node of its tailnet: without the flood {Percentiles.Summary(calmAll)}; with it {Percentiles.Summary(floodAll)}");

            rates.Should().OnlyContain(rate => rate <= ChangesPerSecond * 1.1, "the flooding tailnet is held to its budget");
            rates.Average().Should().BeGreaterThan(ChangesPerSecond * 0.8, "it did flood: it used its whole budget");
            probes.Sum(probe => probe.Timeouts).Should().Be(0);
            rise.Should().BeLessThan(0.10, "the other tailnets' fan-out p99 rises less than 10%");
        }
        finally
        {
            foreach (var fleet in fleets)
            {
                await fleet.DisposeAsync();
            }
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>The flood's count of accepted reports and when it counted them by its clock (it answers "count" with "accepted N T").</summary>
    private static async Task<(long Count, long AtMs)> AcceptedAsync(SampleProcess flood)
    {
        int since = flood.LineCount;
        await flood.WriteLineAsync("count");
        var match = await flood.WaitForLineAsync("^accepted ([0-9]+) ([0-9]+)$", TimeSpan.FromSeconds(30), since);
        return (long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
    }
}
