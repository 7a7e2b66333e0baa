namespace MeshNet.Coordination.Sharding;

/// <summary>
/// Plans one rebalancing cycle from measured loads (pure: no I/O, no clock). A tailnet's score is
/// its connected streams plus its change rate × nodes (each change fans out to every node, so a
/// busy tailnet weighs like one with more streams); a server's is the sum of its tailnets'.
/// </summary>
/// <remarks>
/// <para>Greedy, on a copy of the loads: while the most loaded server is above the mean by more than
/// the hysteresis and above the least loaded by more than the hysteresis, move from it to the
/// least loaded the tailnet that best evens the two, provided the target stays below the source
/// afterwards (so the same tailnet never looks better back where it came from). A tailnet moves
/// at most once per plan, and never while in its cooldown (the caller leaves those out). A server
/// whose process uses more than <see cref="CpuCeiling"/> of its cores takes nothing, whatever its
/// score (its tailnets cost more than their counts say, or it shares its machine), but still gives.</para>
/// <para>Moves are then ordered into rounds in which no server takes part twice: at most one move
/// per server at a time.</para>
/// </remarks>
internal static class RebalancePlanner
{
    /// <summary>A planned move.</summary>
    public sealed record Move(string Tailnet, string From, string To, double Score);

    /// <summary>
    /// A server's load as the planner sees it: the tailnets it may move, the score of those it may
    /// not (in their cooldown), its CPU use (a fraction of one core) and cores (0: unknown).
    /// </summary>
    public sealed record ServerLoads(string Server, IReadOnlyList<TailnetLoad> Tailnets, double Cpu = 0, double PinnedScore = 0, int Cores = 0)
    {
        /// <summary>Whether it uses more than <see cref="CpuCeiling"/> of its cores.</summary>
        public bool Saturated => Cores > 0 && Cpu > CpuCeiling * Cores;
    }

    /// <summary>The share of its cores above which a server is given no tailnet.</summary>
    public const double CpuCeiling = 0.8;

    /// <summary>A tailnet's score: streams plus change rate × nodes.</summary>
    public static double Score(TailnetLoad load) => load.Streams + load.WeightedChangeRate;

    /// <summary>The moves that even the servers out, in rounds of moves on distinct servers.</summary>
    /// <param name="servers">Every live, non-draining server with the tailnets it may move.</param>
    /// <param name="hysteresis">The fraction of the mean a server may be above it, and above the least loaded, without a move (e.g. 0.05).</param>
    /// <param name="minimumGap">An absolute gap below which nothing moves (so that tiny loads do not churn).</param>
    /// <param name="maxMoves">The most moves in one plan.</param>
    public static IReadOnlyList<IReadOnlyList<Move>> Plan(IReadOnlyList<ServerLoads> servers, double hysteresis, double minimumGap = 1, int maxMoves = 64)
    {
        ArgumentNullException.ThrowIfNull(servers);
        if (servers.Count < 2)
        {
            return [];
        }
        var scores = servers.ToDictionary(server => server.Server, server => server.Tailnets.Sum(Score) + server.PinnedScore, StringComparer.Ordinal);
        var movable = servers.ToDictionary(server => server.Server, server => server.Tailnets.ToList(), StringComparer.Ordinal);
        var takers = servers.Where(server => !server.Saturated).Select(server => server.Server).ToHashSet(StringComparer.Ordinal);
        double mean = scores.Values.Sum() / scores.Count;
        double slack = Math.Max(mean * hysteresis, minimumGap);
        var moves = new List<Move>();
        while (moves.Count < maxMoves)
        {
            var source = scores.MaxBy(pair => pair.Value);
            var target = scores.Where(pair => takers.Contains(pair.Key) && pair.Key != source.Key).DefaultIfEmpty().MinBy(pair => pair.Value);
            if (target.Key is null)
            {
                break;
            }
            double gap = source.Value - target.Value;
            if (source.Value <= mean + slack || gap <= slack)
            {
                break;
            }
            // The tailnet that best evens source and target without the target ending above the source.
            TailnetLoad? best = null;
            double bestImbalance = gap;
            foreach (var tailnet in movable[source.Key])
            {
                double score = Score(tailnet);
                if (score <= 0)
                {
                    continue;
                }
                double after = Math.Abs((source.Value - score) - (target.Value + score));
                if (target.Value + score < source.Value - score + slack && after < bestImbalance)
                {
                    best = tailnet;
                    bestImbalance = after;
                }
            }
            if (best is null)
            {
                break;
            }
            double moved = Score(best);
            moves.Add(new Move(best.Tailnet, source.Key, target.Key, moved));
            movable[source.Key].Remove(best);
            scores[source.Key] -= moved;
            scores[target.Key] += moved;
        }
        return Rounds(moves);
    }

    /// <summary>Orders moves into rounds in which no server appears twice.</summary>
    public static IReadOnlyList<IReadOnlyList<Move>> Rounds(IReadOnlyList<Move> moves)
    {
        var pending = moves.ToList();
        var rounds = new List<IReadOnlyList<Move>>();
        while (pending.Count > 0)
        {
            var busy = new HashSet<string>(StringComparer.Ordinal);
            var round = new List<Move>();
            foreach (var move in pending.ToList())
            {
                if (!busy.Contains(move.From) && !busy.Contains(move.To))
                {
                    busy.Add(move.From);
                    busy.Add(move.To);
                    round.Add(move);
                    pending.Remove(move);
                }
            }
            rounds.Add(round);
        }
        return rounds;
    }
}
