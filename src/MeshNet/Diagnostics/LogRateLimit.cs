namespace MeshNet.Diagnostics;

/// <summary>
/// Lets a message through at most once per interval and counts those held back in between, for
/// lines that input or a failing dependency could repeat without end (packet denials, failed
/// cache writes). The first message passes at once.
/// </summary>
/// <remarks>Thread-safe, lock-free and allocation-free: callable on the packet path.</remarks>
internal sealed class LogRateLimit(TimeProvider time, TimeSpan interval)
{
    private readonly long _interval = (long)(interval.TotalSeconds * time.TimestampFrequency);
    private long _next = long.MinValue;
    private long _suppressed;

    /// <summary>
    /// True when a message may be logged now, with how many were held back since the last one
    /// that passed; otherwise false, and this one is counted as held back.
    /// </summary>
    public bool TryEnter(out long suppressed)
    {
        long now = time.GetTimestamp();
        long next = Volatile.Read(ref _next);
        if (now >= next && Interlocked.CompareExchange(ref _next, now + _interval, next) == next)
        {
            suppressed = Interlocked.Exchange(ref _suppressed, 0);
            return true;
        }
        Interlocked.Increment(ref _suppressed);
        suppressed = 0;
        return false;
    }
}
