namespace MeshNet.Coordination.Bus;

/// <summary>
/// Keep-alive delays: the interval with ±10% jitter, so streams opened together do not wake
/// together. Thread-safe.
/// </summary>
internal sealed class KeepAliveJitter
{
    private readonly Random _random;
    private readonly Lock _gate = new();

    /// <param name="interval">The mean delay.</param>
    /// <param name="random">Test hook; default <see cref="Random.Shared"/>.</param>
    public KeepAliveJitter(TimeSpan interval, Random? random)
    {
        Interval = interval;
        _random = random ?? Random.Shared;
    }

    public TimeSpan Interval { get; }

    public TimeSpan Next()
    {
        double sample;
        lock (_gate)
        {
            sample = _random.NextDouble();
        }
        return Interval * (0.9 + 0.2 * sample);
    }
}
