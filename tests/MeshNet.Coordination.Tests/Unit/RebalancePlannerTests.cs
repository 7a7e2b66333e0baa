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
}
