namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// A one-shot timer on an injected <see cref="TimeProvider"/> with the operations WireGuard's
/// state machine needs: <see cref="Mod"/> (arm or re-arm), <see cref="Del"/> (cancel) and
/// <see cref="IsPending"/>.
/// </summary>
/// <remarks>
/// Cheap on the data path: the logical deadline is kept separately from the underlying
/// <see cref="ITimer"/>, which is only re-programmed when the new deadline is earlier than
/// the one it is armed for. A later deadline or a cancellation just updates fields; when the
/// underlying timer fires early it re-arms itself for the remaining time. Thread-safe. After
/// <see cref="Dispose"/> the action never runs again (one already running may finish).
/// </remarks>
internal sealed class PeerTimer : IDisposable
{
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(1);

    private readonly TimeProvider _time;
    private readonly Action _action;
    private readonly Action<Exception> _onError;
    private readonly ITimer _timer;
    private readonly object _lock = new();
    private bool _pending;
    private long _due;
    private bool _armed;
    private long _armedDue;
    private bool _disposed;

    /// <param name="time">The clock.</param>
    /// <param name="action">Runs on expiry, outside the timer's lock.</param>
    /// <param name="onError">Receives any exception <paramref name="action"/> throws (it never escapes to the timer thread).</param>
    public PeerTimer(TimeProvider time, Action action, Action<Exception> onError)
    {
        _time = time;
        _action = action;
        _onError = onError;
        _timer = time.CreateTimer(static state => ((PeerTimer)state!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>True between <see cref="Mod"/> and expiry or <see cref="Del"/>.</summary>
    public bool IsPending => Volatile.Read(ref _pending);

    /// <summary>(Re)arms the timer to expire <paramref name="delay"/> from now.</summary>
    public void Mod(TimeSpan delay)
    {
        long now = _time.GetTimestamp();
        long due = now + ToTimestampTicks(delay);
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _pending = true;
            _due = due;
            if (!_armed || due < _armedDue)
            {
                _armed = true;
                _armedDue = due;
                _timer.Change(delay, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Cancels the timer if pending.</summary>
    public void Del()
    {
        if (!Volatile.Read(ref _pending))
        {
            return;
        }
        lock (_lock)
        {
            _pending = false;
        }
    }

    private void Fire()
    {
        lock (_lock)
        {
            _armed = false;
            if (_disposed || !_pending)
            {
                return;
            }
            long now = _time.GetTimestamp();
            TimeSpan remaining = _time.GetElapsedTime(now, _due);
            if (_due > now && remaining > Slack)
            {
                _armed = true;
                _armedDue = _due;
                _timer.Change(remaining, Timeout.InfiniteTimeSpan);
                return;
            }
            _pending = false;
        }
        try
        {
            _action();
        }
        catch (Exception exception)
        {
            _onError(exception);
        }
    }

    private long ToTimestampTicks(TimeSpan delay) =>
        (long)(delay.Ticks * ((double)_time.TimestampFrequency / TimeSpan.TicksPerSecond));

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _pending = false;
        }
        _timer.Dispose();
    }
}
