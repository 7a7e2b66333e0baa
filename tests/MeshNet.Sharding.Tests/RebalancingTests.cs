using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 8: ten tailnets of different sizes piled skewed on three servers, then a fourth server
/// added, with the rebalancer on: it converges within three cycles (a cycle that plans no move),
/// makes at most one move per server at a time, moves no tailnet back where it was, and keeps
/// still for several cycles after (longer than the cooldown, so nothing but its own judgement
/// keeps a tailnet from going back). What the servers did is read from their logs (every cycle,
/// and the start and end of every move, with their times).
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed partial class RebalancingTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(3);
    private const int QuietCycles = 7;

    [PostgresFact]
    public async Task ThreeSkewedServersAndANewOneConvergeWithinThreeCyclesOneMovePerServerAtATimeAndNothingGoesBack()
    {
        var tuning = new Dictionary<string, string>
        {
            ["RebalanceInterval"] = CoordinatorProcess.Duration(Interval),
            ["RebalanceCooldown"] = CoordinatorProcess.Duration(Interval * 4),
            ["RebalanceLoadWindow"] = CoordinatorProcess.Duration(TimeSpan.FromSeconds(2)),
            ["RebalanceHysteresis"] = "0.05",
        };
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3, tuning);
        await deployment.CallAsync(admin => admin.SetRebalancerAsync(new SetRebalancerRequest { Paused = true }, ShardedDeployment.AdminHeaders()).ResponseAsync);
        // Sizes and places: s1 104 streams, s2 32, s3 14.
        var layout = new (string Name, int Nodes, int Server)[]
        {
            ("r0", 36, 0), ("r1", 28, 0), ("r2", 22, 0), ("r3", 18, 0),
            ("r4", 14, 1), ("r5", 10, 1), ("r6", 8, 1),
            ("r7", 6, 2), ("r8", 4, 2), ("r9", 4, 2),
        };
        var fleets = new List<NodeFleet>();
        try
        {
            foreach (var (name, nodes, server) in layout)
            {
                var key = await deployment.CreateTailnetAsync(name);
                if ((await deployment.OwnerAsync(name)).Server != deployment.Servers[server])
                {
                    await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = name, TargetServer = deployment.Servers[server].ServerId },
                        ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                }
                fleets.Add(await NodeFleet.JoinAsync(deployment, key, nodes, $"{name}-n"));
            }
            foreach (var fleet in fleets)
            {
                await fleet.WaitAllAsync(node => node.PeerCount == fleet.Nodes.Count - 1, "every peer known");
            }
            var fourth = await deployment.AddServerAsync();
            // Steady load: the joins' burst of changes has faded from every server's average.
            await WaitAsync(async () =>
            {
                var servers = (await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync)).Servers;
                return servers.Count == 4 && servers.All(server => server.Live && Load(server.Load, "weightedChangeRate") < 0.5);
            }, "four live servers with their change rates settled", TimeSpan.FromMinutes(2));
            var streamsBefore = await StreamsAsync(deployment);

            var resumed = DateTime.UtcNow;
            await deployment.CallAsync(admin => admin.SetRebalancerAsync(new SetRebalancerRequest { Paused = false }, ShardedDeployment.AdminHeaders()).ResponseAsync);
            // Watch until the cycles with moves are followed by enough quiet ones.
            List<Cycle> cycles = [];
            await WaitAsync(() =>
            {
                cycles = CyclesSince(deployment, resumed);
                int lastMoving = cycles.FindLastIndex(cycle => cycle.Moves > 0);
                return Task.FromResult(cycles.Count >= lastMoving + 1 + QuietCycles);
            }, $"{QuietCycles} cycles after the last that moved anything", TimeSpan.FromMinutes(3));
            var moves = MovesSince(deployment, resumed);
            var streamsAfter = await StreamsAsync(deployment);

            output.WriteLine($"streams per server before: {string.Join(", ", streamsBefore.Select(pair => $"{pair.Key} {pair.Value}"))}");
            foreach (var (cycle, index) in cycles.Select((cycle, index) => (cycle, index)))
            {
                output.WriteLine($"cycle {index + 1} at +{(cycle.At - resumed).TotalSeconds:0.0} s: {cycle.Moves} moves; loads {cycle.Loads}");
            }
            foreach (var move in moves)
            {
                output.WriteLine($"  {move.Tailnet} {move.From} -> {move.To}: +{(move.Started - resumed).TotalSeconds:0.000} s to +{(move.Ended - resumed).TotalSeconds:0.000} s " +
                    $"({(move.Failed ? "failed" : "done")})");
            }
            output.WriteLine($"streams per server after: {string.Join(", ", streamsAfter.Select(pair => $"{pair.Key} {pair.Value}"))}");

            moves.Should().NotBeEmpty("the new server is given tailnets");
            moves.Should().NotContain(move => move.Failed);
            int moving = cycles.FindLastIndex(cycle => cycle.Moves > 0) + 1;
            moving.Should().BeInRange(1, 3, "it converges within three cycles");
            cycles.Skip(moving).Should().OnlyContain(cycle => cycle.Moves == 0, "and stays converged");
            moves.Count.Should().Be(cycles.Sum(cycle => cycle.Moves), "every planned move was made");
            foreach (var move in moves)
            {
                moves.Where(other => other != move && new[] { other.From, other.To }.Intersect([move.From, move.To]).Any())
                    .Should().NotContain(other => other.Started < move.Ended && move.Started < other.Ended,
                        $"{move.Tailnet} ({move.From} -> {move.To}) overlaps no other move of its servers");
            }
            foreach (var tailnet in moves.GroupBy(move => move.Tailnet))
            {
                var path = new List<string> { tailnet.First().From };
                path.AddRange(tailnet.Select(move => move.To));
                path.Should().OnlyHaveUniqueItems($"{tailnet.Key} never goes back to a server it left ({string.Join(" -> ", path)})");
            }
            streamsAfter[fourth.ServerId].Should().BeGreaterThan(0);
            double mean = streamsAfter.Values.Average();
            streamsAfter.Values.Max().Should().BeLessThanOrEqualTo((long)Math.Ceiling(mean * 1.25), "the servers end up within 25% of the mean");

            foreach (var fleet in fleets)
            {
                await fleet.WaitAllAsync(node => !node.InGap, "every node streaming");
            }
            fleets.SelectMany(fleet => fleet.Problems()).Should().BeEmpty("moves keep every node's sequence, without full netmaps");
        }
        finally
        {
            foreach (var fleet in fleets)
            {
                await fleet.DisposeAsync();
            }
        }
    }

    private sealed record Cycle(DateTime At, int Moves, string Loads);

    private sealed record Move(string Tailnet, string From, string To, DateTime Started, DateTime Ended, bool Failed);

    /// <summary>The rebalancing cycles every server logged since <paramref name="since"/>, in order.</summary>
    private static List<Cycle> CyclesSince(ShardedDeployment deployment, DateTime since) =>
    [
        .. deployment.Servers.SelectMany(server => server.Process.Lines)
            .Select(line => CycleLine().Match(line)).Where(match => match.Success)
            .Select(match => new Cycle(At(match.Groups["at"].Value, since), int.Parse(match.Groups["moves"].Value, CultureInfo.InvariantCulture), match.Groups["loads"].Value))
            .Where(cycle => cycle.At >= since).OrderBy(cycle => cycle.At),
    ];

    /// <summary>Every move since <paramref name="since"/>, from the start and end its source logged.</summary>
    private static List<Move> MovesSince(ShardedDeployment deployment, DateTime since)
    {
        var moves = new List<Move>();
        foreach (var server in deployment.Servers)
        {
            var open = new Dictionary<string, (string To, DateTime Started)>(StringComparer.Ordinal);
            foreach (var line in server.Process.Lines)
            {
                if (MovingLine().Match(line) is { Success: true } moving)
                {
                    open[moving.Groups["tailnet"].Value] = (moving.Groups["to"].Value, At(moving.Groups["at"].Value, since));
                }
                else if (MovedLine().Match(line) is { Success: true } moved && open.Remove(moved.Groups["tailnet"].Value, out var started))
                {
                    moves.Add(new Move(moved.Groups["tailnet"].Value, server.ServerId, started.To, started.Started, At(moved.Groups["at"].Value, since),
                        moved.Groups["failed"].Success));
                }
            }
            moves.AddRange(open.Select(pair => new Move(pair.Key, server.ServerId, pair.Value.To, pair.Value.Started, DateTime.MaxValue, Failed: true)));
        }
        return [.. moves.Where(move => move.Started >= since).OrderBy(move => move.Started)];
    }

    /// <summary>A log time (UTC time of day) as the instant nearest <paramref name="near"/>.</summary>
    private static DateTime At(string timeOfDay, DateTime near)
    {
        var at = near.Date + TimeSpan.ParseExact(timeOfDay, @"hh\:mm\:ss\.fff", CultureInfo.InvariantCulture);
        return (at - near).TotalHours switch
        {
            > 12 => at.AddDays(-1),
            < -12 => at.AddDays(1),
            _ => at,
        };
    }

    private static async Task<Dictionary<string, long>> StreamsAsync(ShardedDeployment deployment)
    {
        var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
        return servers.Servers.ToDictionary(server => server.Id, server => (long)Load(server.Load, "streams"), StringComparer.Ordinal);
    }

    private static double Load(string json, string name)
    {
        if (string.IsNullOrEmpty(json))
        {
            return 0;
        }
        using var document = JsonDocument.Parse(json);
        return document.RootElement.TryGetProperty(name, out var value) ? value.GetDouble() : 0;
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, what);
            await Task.Delay(200);
        }
    }

    [GeneratedRegex(@"^(?<at>\d\d:\d\d:\d\d\.\d{3}) \w+: \S+ Rebalancing cycle: (?<moves>\d+) moves.*loads (?<loads>.*)$")]
    private static partial Regex CycleLine();

    [GeneratedRegex(@"^(?<at>\d\d:\d\d:\d\d\.\d{3}) \w+: \S+ Moving tailnet (?<tailnet>\S+) from (?<from>\S+) to (?<to>\S+) \(")]
    private static partial Regex MovingLine();

    [GeneratedRegex(@"^(?<at>\d\d:\d\d:\d\d\.\d{3}) \w+: \S+ (?:Tailnet (?<tailnet>\S+) moved from|Moving tailnet (?<tailnet>\S+) to \S+ (?<failed>failed))")]
    private static partial Regex MovedLine();
}
