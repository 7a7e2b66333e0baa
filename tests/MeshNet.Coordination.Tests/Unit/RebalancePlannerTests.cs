using MeshNet.Coordination.Sharding;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class RebalancePlannerTests
{
    private static RebalancePlanner.ServerLoads Server(string id, params int[] streams) =>
        new(id, [.. streams.Select((count, i) => new TailnetLoad($"{id}-t{i}", count, count, 0))]);

    [Fact]
    public void BalancedServersMoveNothing()
    {
        RebalancePlanner.Plan([Server("s1", 10, 10), Server("s2", 10, 11), Server("s3", 21)], 0.05).Should().BeEmpty();
        RebalancePlanner.Plan([Server("s1", 10)], 0.05).Should().BeEmpty("one server has nowhere to move to");
    }

    [Fact]
    public void SkewedServersAndANewOneConvergeInOnePlanWithOneMovePerServerAtATime()
    {
        var servers = new[] { Server("s1", 10, 10, 10, 10, 10, 10), Server("s2", 10, 10, 10), Server("s3", 10, 10), Server("s4") };
        var rounds = RebalancePlanner.Plan(servers, 0.05);
        var moves = rounds.SelectMany(round => round).ToList();
        moves.Select(move => move.Tailnet).Should().OnlyHaveUniqueItems("a tailnet moves at most once per plan");
        foreach (var round in rounds)
        {
            round.SelectMany(move => new[] { move.From, move.To }).Should().OnlyHaveUniqueItems("at most one move per server at a time");
        }
        var final = servers.ToDictionary(server => server.Server, server => server.Tailnets.Sum(RebalancePlanner.Score));
        foreach (var move in moves)
        {
            final[move.From] -= move.Score;
            final[move.To] += move.Score;
        }
        (final.Values.Max() - final.Values.Min()).Should().BeLessThanOrEqualTo(10, "within one tailnet of even: {0}", string.Join(", ", final));
        moves.Should().NotContain(move => moves.Any(other => other.Tailnet == move.Tailnet && other.From == move.To), "nothing moves back");
    }

    [Fact]
    public void ATailnetTooBigToHelpStaysAndPinnedLoadCounts()
    {
        RebalancePlanner.Plan([Server("s1", 100), Server("s2")], 0.05).Should().BeEmpty("moving it would only swap the imbalance");
        var pinned = new RebalancePlanner.ServerLoads("s1", [new TailnetLoad("small", 5, 5, 0)], PinnedScore: 50);
        var rounds = RebalancePlanner.Plan([pinned, Server("s2")], 0.05);
        rounds.SelectMany(round => round).Single().Tailnet.Should().Be("small", "only tailnets out of their cooldown move, but the rest weighs");
    }

    [Fact]
    public void ChangeRateWeighsLikeStreams()
    {
        // By streams alone s2 (20) is the busiest; counting changes × nodes, s1 (2 × (5 + 10)) is.
        var busy = new RebalancePlanner.ServerLoads("s1", [new TailnetLoad("a", 5, 5, 10), new TailnetLoad("b", 5, 5, 10)]);
        var rounds = RebalancePlanner.Plan([busy, Server("s2", 20), Server("s3")], 0.05);
        var move = rounds.SelectMany(round => round).First();
        (move.From, move.To, move.Score).Should().Be(("s1", "s3", 15));
    }

    [Fact]
    public void AServerBusyOnCpuTakesNothingButStillGives()
    {
        // s3 has the fewest streams but its process uses 1.8 of its 2 cores: s2 gets the move.
        var rounds = RebalancePlanner.Plan([Server("s1", 10, 10, 10, 10), Server("s2", 10), Server("s3") with { Cpu = 1.8, Cores = 2 }], 0.05);
        rounds.SelectMany(round => round).Should().OnlyContain(move => move.To == "s2");
        rounds.SelectMany(round => round).Should().NotBeEmpty();
        (Server("s3") with { Cpu = 1.5, Cores = 2 }).Saturated.Should().BeFalse("75% is under the ceiling");
        (Server("s3") with { Cpu = 5 }).Saturated.Should().BeFalse("cores unknown: CPU is not judged");

        var busy = Server("s1", 10, 10, 10, 10) with { Cpu = 3.9, Cores = 4 };
        RebalancePlanner.Plan([busy, Server("s2")], 0.05).SelectMany(round => round).Should().NotBeEmpty("a saturated server still gives");
        RebalancePlanner.Plan([Server("s1", 10, 10, 10, 10), Server("s2") with { Cpu = 4, Cores = 4 }], 0.05)
            .Should().BeEmpty("the only other server is saturated");
    }
}
