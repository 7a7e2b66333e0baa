using System.Diagnostics;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// A clock for benchmarks: time stands still unless <see cref="Advance"/> moves it, so a session
/// never ages out and a handshake run never depends on wall time. Every read still performs the
/// real clock read it replaces (and discards it), so the cost of the device's clock reads stays
/// in the measurements. Timers are inert: they accept <c>Change</c> and never fire, so no
/// background thread runs during a measurement.
/// </summary>
/// <remarks>Not thread-safe; benchmarks drive it from one thread.</remarks>
internal sealed class BenchClock : TimeProvider
{
    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private long _timestamp = 1_000_000_000;
    private long _utcTicks = Epoch.UtcTicks;

    public override long TimestampFrequency => Stopwatch.Frequency;

    public override long GetTimestamp()
    {
        _ = Stopwatch.GetTimestamp();
        return _timestamp;
    }

    public override DateTimeOffset GetUtcNow()
    {
        _ = DateTime.UtcNow;
        return new DateTimeOffset(_utcTicks, TimeSpan.Zero);
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new InertTimer();

    /// <summary>Moves both the monotonic clock and wall time forward.</summary>
    public void Advance(TimeSpan duration)
    {
        _timestamp += (long)(duration.Ticks * ((double)Stopwatch.Frequency / TimeSpan.TicksPerSecond));
        _utcTicks += duration.Ticks;
    }

    private sealed class InertTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => true;

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
