namespace MeshNet.TestSupport.Impairment;

/// <summary>
/// What an <see cref="ImpairmentRelay"/> does to the datagrams of one direction. Every
/// probability is drawn per datagram from the relay's seeded <see cref="Random"/>, so the same
/// seed and the same arrival order give the same decisions. Stages, in order: loss (random,
/// then bursty), duplication, delay (+ jitter), reordering.
/// </summary>
/// <remarks>
/// Delay and jitter: a datagram leaves <see cref="Delay"/> plus a uniform draw from
/// [-<see cref="Jitter"/>, +<see cref="Jitter"/>] after it arrived (never before it arrived).
/// With <see cref="JitterKeepsOrder"/> a datagram never leaves before the one received before
/// it (its release is raised to the previous one's, so jitter then only stretches gaps);
/// without it, jitter larger than the spacing of datagrams reorders them, as netem does.
/// Reordering: with probability <see cref="ReorderProbability"/> a datagram is held back and
/// released right after the next <see cref="ReorderGap"/> datagrams of its direction have left,
/// or once it has been held <see cref="ReorderHold"/> (whichever comes first; with a gap of 0
/// only the hold time applies).
/// </remarks>
public sealed record ImpairmentProfile
{
    /// <summary>No impairment: datagrams are forwarded at once, from the receiving thread.</summary>
    public static ImpairmentProfile None { get; } = new();

    /// <summary>Fixed one-way delay added to every datagram.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Half-width of the uniform jitter added to <see cref="Delay"/>.</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>When true (the default) jitter never reorders datagrams (see the remarks).</summary>
    public bool JitterKeepsOrder { get; init; } = true;

    /// <summary>Probability that a datagram is dropped at random (independently of the others).</summary>
    public double LossProbability { get; init; }

    /// <summary>Bursty (correlated) loss; null for none. Applied after <see cref="LossProbability"/>.</summary>
    public GilbertElliottLoss? BurstLoss { get; init; }

    /// <summary>Probability that a datagram is sent twice (the copy right after the original).</summary>
    public double DuplicateProbability { get; init; }

    /// <summary>Probability that a datagram is held back and overtaken by later ones.</summary>
    public double ReorderProbability { get; init; }

    /// <summary>How many later datagrams overtake a held one (0: release by <see cref="ReorderHold"/> only).</summary>
    public int ReorderGap { get; init; } = 3;

    /// <summary>The longest a reordered datagram is held (so a quiet link does not keep it forever).</summary>
    public TimeSpan ReorderHold { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>True when datagrams can be forwarded straight from the receiving thread (no timing stage).</summary>
    public bool IsImmediate => Delay == TimeSpan.Zero && Jitter == TimeSpan.Zero && ReorderProbability == 0;

    /// <summary>Random loss of <paramref name="probability"/>.</summary>
    public static ImpairmentProfile RandomLoss(double probability) => new() { LossProbability = probability };

    /// <summary>A delay of <paramref name="delay"/> ± <paramref name="jitter"/>.</summary>
    public static ImpairmentProfile Delayed(TimeSpan delay, TimeSpan jitter = default, bool keepOrder = true) =>
        new() { Delay = delay, Jitter = jitter, JitterKeepsOrder = keepOrder };

    /// <summary>Reordering of <paramref name="probability"/> of the datagrams, each overtaken by <paramref name="gap"/> others.</summary>
    public static ImpairmentProfile Reordered(double probability, int gap = 3) => new() { ReorderProbability = probability, ReorderGap = gap };

    /// <summary>Duplication of <paramref name="probability"/> of the datagrams.</summary>
    public static ImpairmentProfile Duplicated(double probability) => new() { DuplicateProbability = probability };

    /// <summary>Bursty loss with <paramref name="model"/> (default <see cref="GilbertElliottLoss.Bursty"/>).</summary>
    public static ImpairmentProfile Bursty(GilbertElliottLoss? model = null) => new() { BurstLoss = model ?? GilbertElliottLoss.Bursty };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid property.</summary>
    public void Validate(string name)
    {
        static void Probability(double p, string property, string name)
        {
            if (!(p >= 0 && p <= 1))
            {
                throw new ArgumentException($"{name}.{property} must be a probability in [0, 1], not {p}.", name);
            }
        }

        if (Delay < TimeSpan.Zero || Jitter < TimeSpan.Zero || ReorderHold < TimeSpan.Zero)
        {
            throw new ArgumentException($"{name}: {nameof(Delay)}, {nameof(Jitter)} and {nameof(ReorderHold)} must not be negative.", name);
        }
        if (ReorderGap < 0)
        {
            throw new ArgumentException($"{name}.{nameof(ReorderGap)} must not be negative.", name);
        }
        if (ReorderProbability > 0 && ReorderGap == 0 && ReorderHold == TimeSpan.Zero)
        {
            throw new ArgumentException($"{name}: reordering needs a {nameof(ReorderGap)} or a {nameof(ReorderHold)}.", name);
        }
        Probability(LossProbability, nameof(LossProbability), name);
        Probability(DuplicateProbability, nameof(DuplicateProbability), name);
        Probability(ReorderProbability, nameof(ReorderProbability), name);
        BurstLoss?.Validate($"{name}.{nameof(BurstLoss)}");
    }

    /// <inheritdoc />
    public override string ToString()
    {
        var parts = new List<string>();
        if (LossProbability > 0)
        {
            parts.Add($"loss {LossProbability:P2}");
        }
        if (BurstLoss is { } burst)
        {
            parts.Add(burst.ToString());
        }
        if (DuplicateProbability > 0)
        {
            parts.Add($"duplicate {DuplicateProbability:P2}");
        }
        if (Delay > TimeSpan.Zero || Jitter > TimeSpan.Zero)
        {
            parts.Add($"delay {Delay.TotalMilliseconds:0.##} ms ± {Jitter.TotalMilliseconds:0.##} ms{(JitterKeepsOrder ? " (ordered)" : "")}");
        }
        if (ReorderProbability > 0)
        {
            parts.Add($"reorder {ReorderProbability:P2} (gap {ReorderGap}, hold ≤ {ReorderHold.TotalMilliseconds:0.##} ms)");
        }
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }
}
