using System.Runtime.CompilerServices;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>The deadlines a connection multiplexes on its one timer.</summary>
internal enum TcpTimer
{
    /// <summary>RTO, tail loss probe, RACK reordering timeout or zero-window probe (one at a time, see <see cref="RetransmitKind"/>).</summary>
    Retransmit,

    /// <summary>Delayed ACK.</summary>
    DelayedAck,

    /// <summary>Keepalive idle/interval.</summary>
    KeepAlive,

    /// <summary>Connect timeout (SYN-SENT), FIN-WAIT-2 timeout or TIME-WAIT expiry.</summary>
    Linger,

    /// <summary>Retry after the memory budget refused a buffer page.</summary>
    Retry,
}

/// <summary>What the <see cref="TcpTimer.Retransmit"/> deadline currently means.</summary>
internal enum RetransmitKind : byte
{
    None,
    Rto,
    TailLossProbe,
    ReorderTimeout,
    ZeroWindowProbe,
}

/// <summary>
/// A connection's deadlines (microseconds on the stack clock; <see cref="long.MaxValue"/> =
/// off) over one <see cref="ITimer"/>. Setting a deadline is a field write; the ITimer is only
/// re-programmed when the earliest deadline moves before the time it is armed for. When it
/// fires (possibly early, because deadlines moved later) the owner handles what expired and
/// calls <see cref="Schedule"/> again. Rounds delays up to whole milliseconds, the resolution
/// of system timers, so a timer never fires before its deadline.
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it (the ITimer itself is).</remarks>
internal sealed class TcpTimerSet : IDisposable
{
    public const long Off = long.MaxValue;

    private readonly ITimer _timer;
    private Deadlines _deadlines;
    private long _armedDue = Off;
    private bool _disposed;

    [InlineArray(5)]
    private struct Deadlines
    {
        private long _element;
    }

    public TcpTimerSet(TimeProvider time, TimerCallback callback, object state)
    {
        _timer = time.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        for (int i = 0; i < 5; i++)
        {
            _deadlines[i] = Off;
        }
    }

    /// <summary>What the retransmit deadline stands for.</summary>
    public RetransmitKind RetransmitKind { get; private set; }

    public long this[TcpTimer timer] => _deadlines[(int)timer];

    public bool IsSet(TcpTimer timer) => _deadlines[(int)timer] != Off;

    public void Set(TcpTimer timer, long due) => _deadlines[(int)timer] = due;

    public void Clear(TcpTimer timer)
    {
        _deadlines[(int)timer] = Off;
        if (timer == TcpTimer.Retransmit)
        {
            RetransmitKind = RetransmitKind.None;
        }
    }

    /// <summary>Sets the retransmit deadline with its meaning.</summary>
    public void SetRetransmit(RetransmitKind kind, long due)
    {
        RetransmitKind = kind;
        _deadlines[(int)TcpTimer.Retransmit] = due;
    }

    /// <summary>True when <paramref name="timer"/> is set and due at <paramref name="now"/>.</summary>
    public bool Expired(TcpTimer timer, long now) => _deadlines[(int)timer] <= now;

    /// <summary>The underlying timer fired: it is no longer armed.</summary>
    public void OnFired() => _armedDue = Off;

    /// <summary>Arms the ITimer for the earliest deadline if it is not armed early enough.</summary>
    public void Schedule(long now)
    {
        if (_disposed)
        {
            return;
        }
        long earliest = Off;
        for (int i = 0; i < 5; i++)
        {
            earliest = Math.Min(earliest, _deadlines[i]);
        }
        if (earliest == Off || earliest >= _armedDue)
        {
            return;
        }
        _armedDue = earliest;
        long delayMs = Math.Max(0, (earliest - now + 999) / 1000);
        _timer.Change(TimeSpan.FromMilliseconds(delayMs), Timeout.InfiniteTimeSpan);
    }

    /// <summary>Clears every deadline.</summary>
    public void ClearAll()
    {
        for (int i = 0; i < 5; i++)
        {
            _deadlines[i] = Off;
        }
        RetransmitKind = RetransmitKind.None;
    }

    public void Dispose()
    {
        _disposed = true;
        ClearAll();
        _timer.Dispose();
    }
}
