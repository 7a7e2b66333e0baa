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
            _tokens = Math.Min(_burst, _tokens + _time.GetElapsedTime(_updated, now).TotalSeconds * _perSecond);
            _updated = now;
            if (_tokens >= 1)
            {
                _tokens -= 1;
                retryAfter = TimeSpan.Zero;
                return true;
            }
            retryAfter = TimeSpan.FromSeconds((1 - _tokens) / _perSecond);
            return false;
        }
    }
}
