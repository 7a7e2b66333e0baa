namespace MeshNet.Coordination.Bus;

/// <summary>
/// A token bucket on the injected clock: how many changes per second one tailnet may make
/// (<see cref="CoordinationOptions.TailnetChangesPerSecond"/>, bursts up to
/// <see cref="CoordinationOptions.TailnetChangeBurst"/>), so that a tailnet flooding changes
/// (registrations, endpoint reports, policy saves) cannot take the server's time from the
/// others. Thread-safe.
/// </summary>
internal sealed class ChangeRateLimiter
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly double _perSecond;
    private readonly double _burst;
    private double _tokens;
    private long _updated;
    private double _queuedUntil; // seconds after _updated at which the last turn handed out falls

    /// <summary>The longest retry time handed out (callers beyond it are told to come back then, and may be refused again).</summary>
    public static readonly TimeSpan MaxRetryAfter = TimeSpan.FromSeconds(10);

    public ChangeRateLimiter(double perSecond, double burst, TimeProvider time)
    {
        _perSecond = perSecond;
        _burst = Math.Max(1, burst);
        _time = time;
        _tokens = _burst;
        _updated = time.GetTimestamp();
    }

    /// <summary>Takes one change; false (with when to retry) when the tailnet is over its rate.</summary>
    public bool TryTake(out TimeSpan retryAfter)
    {
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            double elapsed = _time.GetElapsedTime(_updated, now).TotalSeconds;
            _tokens = Math.Min(_burst, _tokens + elapsed * _perSecond);
            _queuedUntil = Math.Max(0, _queuedUntil - elapsed);
            _updated = now;
            if (_tokens >= 1 - 1e-9) // a caller back exactly at its turn finds its token despite rounding
            {
                _tokens = Math.Max(0, _tokens - 1);
                retryAfter = TimeSpan.Zero;
                return true;
            }
            // The next token, or the turn after the last one handed out, whichever is later.
            double turn = Math.Max((1 - _tokens) / _perSecond, _queuedUntil + 1 / _perSecond);
            turn = Math.Min(turn, MaxRetryAfter.TotalSeconds);
            _queuedUntil = turn;
            retryAfter = TimeSpan.FromTicks((long)Math.Ceiling(turn * TimeSpan.TicksPerSecond)); // rounded up: the token is there then
            return false;
        }
    }
}
