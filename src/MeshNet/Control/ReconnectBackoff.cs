namespace MeshNet.Control;

/// <summary>
/// Exponential backoff with full jitter: after <c>n</c> consecutive failures the delay is
/// uniformly random in [0, min(max, min·2ⁿ)), so that many nodes cut off by one outage do not
/// come back in lock step.
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class ReconnectBackoff
{
    private readonly Random _random;
    private readonly Lock _lock = new();

    public ReconnectBackoff(TimeSpan minDelay, TimeSpan maxDelay, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(minDelay, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDelay, minDelay);
        MinDelay = minDelay;
        MaxDelay = maxDelay;
        _random = random ?? Random.Shared;
    }

    public TimeSpan MinDelay { get; }

    public TimeSpan MaxDelay { get; }

    /// <summary>The ceiling after <paramref name="failures"/> consecutive failures (0 for the first retry): min·2ⁿ, capped at the maximum.</summary>
    public TimeSpan Ceiling(int failures)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(failures);
        if (failures >= 62)
        {
            return MaxDelay;
        }
        double ticks = MinDelay.Ticks * Math.Pow(2, failures);
        return ticks >= MaxDelay.Ticks ? MaxDelay : TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>A random delay in [0, <paramref name="ceiling"/>).</summary>
    public TimeSpan Jitter(TimeSpan ceiling)
    {
        double fraction;
        lock (_lock)
        {
            fraction = _random.NextDouble();
        }
        return TimeSpan.FromTicks((long)(Math.Max(0, ceiling.Ticks) * fraction));
    }

    /// <summary>A random delay in [0, <see cref="Ceiling"/>).</summary>
    public TimeSpan Next(int failures)
    {
        var ceiling = Ceiling(failures);
        double fraction;
        lock (_lock)
        {
            fraction = _random.NextDouble();
        }
        return TimeSpan.FromTicks((long)(ceiling.Ticks * fraction));
    }
}
