namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// Real time plus an adjustable offset: lets an interop test move the MeshNet device's clock
/// forward (past RekeyAfterTime, say) while the real peer keeps real time. Timers run in real
/// time; only "now" jumps.
/// </summary>
internal sealed class ShiftableTimeProvider : TimeProvider
{
    private long _offsetTicks;

    public TimeSpan Offset => TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public void Shift(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;

    public override long GetTimestamp() =>
        System.GetTimestamp() + (long)(Offset.Ticks * ((double)TimestampFrequency / TimeSpan.TicksPerSecond));

    public override long TimestampFrequency => System.TimestampFrequency;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        System.CreateTimer(callback, state, dueTime, period);
}
