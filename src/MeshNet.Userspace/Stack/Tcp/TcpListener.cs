using System.Net;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// A listening TCP socket of an <see cref="IpStack"/>, created by <see cref="IpStack.ListenTcp"/>.
/// Connections complete their handshake in the background and wait in an accept queue of
/// <c>backlog</c> entries; beyond <see cref="TcpStackOptions.SynBacklog"/> half-open connections
/// the listener answers with SYN cookies instead of keeping state.
/// </summary>
/// <remarks>
/// Thread-safe. Disposing stops listening: half-open connections and connections still in the
/// accept queue are reset; connections already returned by <see cref="AcceptAsync"/> are not
/// affected; a pending <see cref="AcceptAsync"/> fails with <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class TcpListener : IAsyncDisposable, IDisposable
{
    private readonly TcpLayer _layer;
    private readonly object _sync = new();
    private readonly Queue<TcpControlBlock> _accepted = new();
    private readonly HashSet<TcpControlBlock> _halfOpen = [];
    private readonly AsyncSignal _acceptSignal;
    private readonly int _backlog;
    private long _lastCookieTime;
    private bool _cookiesSent;
    private bool _disposed;

    internal TcpListener(TcpLayer layer, ListenKey key, IPEndPoint localEndPoint, int backlog)
    {
        _layer = layer;
        Key = key;
        LocalEndPoint = localEndPoint;
        _backlog = backlog;
        _acceptSignal = new AsyncSignal(_sync);
    }

    /// <summary>The address and port listened on (the chosen port when 0 was requested).</summary>
    public IPEndPoint LocalEndPoint { get; }

    internal ListenKey Key { get; }

    /// <summary>Connections in SYN-RECEIVED.</summary>
    internal int HalfOpenCount
    {
        get
        {
            lock (_sync)
            {
                return _halfOpen.Count;
            }
        }
    }

    /// <summary>Established connections waiting for <see cref="AcceptAsync"/>.</summary>
    internal int PendingCount
    {
        get
        {
            lock (_sync)
            {
                return _accepted.Count;
            }
        }
    }

    /// <summary>True while the accept queue has room.</summary>
    internal bool HasRoomForAccept
    {
        get
        {
            lock (_sync)
            {
                return !_disposed && _accepted.Count < _backlog;
            }
        }
    }

    internal long LastCookieTime
    {
        get
        {
            lock (_sync)
            {
                return _lastCookieTime;
            }
        }
    }

    internal bool CookiesEverSent
    {
        get
        {
            lock (_sync)
            {
                return _cookiesSent;
            }
        }
    }

    /// <summary>Records that a SYN cookie was sent; true the first time in a while (worth a log line).</summary>
    internal bool MarkCookieSent(long now)
    {
        lock (_sync)
        {
            bool first = !_cookiesSent || now - _lastCookieTime > 60_000_000;
            _cookiesSent = true;
            _lastCookieTime = now;
            return first;
        }
    }

    internal bool TryAddHalfOpen(TcpControlBlock cb)
    {
        lock (_sync)
        {
            return !_disposed && _halfOpen.Add(cb);
        }
    }

    internal void OnHalfOpenGone(TcpControlBlock cb)
    {
        lock (_sync)
        {
            _halfOpen.Remove(cb);
        }
    }

    /// <summary>A connection finished its handshake (called under its lock). False when the listener is closed: the caller resets it.</summary>
    internal bool OnEstablished(TcpControlBlock cb)
    {
        lock (_sync)
        {
            _halfOpen.Remove(cb);
            if (_disposed)
            {
                return false;
            }
            _accepted.Enqueue(cb);
            _acceptSignal.Set();
            return true;
        }
    }

    /// <summary>Waits for the next established connection.</summary>
    /// <exception cref="ObjectDisposedException">The listener is (or gets) disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async ValueTask<TcpConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ValueTask wait;
            lock (_sync)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                cancellationToken.ThrowIfCancellationRequested();
                if (_accepted.TryDequeue(out var cb))
                {
                    return new TcpConnection(cb);
                }
                wait = _acceptSignal.WaitAsync(cancellationToken);
            }
            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>Stops listening (see the class remarks). Idempotent.</summary>
    public void Dispose()
    {
        TcpControlBlock[] reset;
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            reset = [.. _halfOpen, .. _accepted];
            _halfOpen.Clear();
            _accepted.Clear();
            _acceptSignal.Fail(new ObjectDisposedException(nameof(TcpListener)));
        }
        _layer.RemoveListener(this);
        foreach (var cb in reset)
        {
            cb.Abort();
        }
    }

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return default;
    }

    /// <summary>The listener's endpoint.</summary>
    public override string ToString() => $"TcpListener({LocalEndPoint})";
}
