namespace MeshNet.Userspace.Stack.Icmp;

/// <summary>
/// A token bucket for the ICMP errors a stack sends (RFC 1812 4.3.2.8, RFC 4443 2.4(f)):
/// <c>rate</c> tokens per second, holding at most one second's worth, full at start. A rate of
/// zero suppresses every error. Time comes from the stack's <see cref="TimeProvider"/>.
/// Thread-safe (one short lock, taken only on the error path).
/// </summary>
internal sealed class IcmpRateLimiter
{
    private readonly TimeProvider _time;
    private readonly double _perTick;    // tokens per timestamp tick
    private readonly double _capacity;
    private readonly Lock _lock = new();
    private double _tokens;              // guarded by _lock
    private long _last;                  // guarded by _lock

    public IcmpRateLimiter(TimeProvider time, int perSecond)
    {
        _time = time;
        _capacity = perSecond;
        _perTick = perSecond / (double)time.TimestampFrequency;
        _tokens = _capacity;
        _last = time.GetTimestamp();
    }

    /// <summary>Takes a token if one is available.</summary>
    public bool TryAcquire()
    {
        if (_capacity <= 0)
        {
            return false;
        }
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            if (now > _last)
            {
                _tokens = Math.Min(_capacity, _tokens + (now - _last) * _perTick);
                _last = now;
            }
            if (_tokens < 1)
            {
                return false;
            }
            _tokens -= 1;
            return true;
        }
    }
}
