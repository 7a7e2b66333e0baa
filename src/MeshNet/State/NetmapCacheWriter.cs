using MeshNet.Diagnostics;
using MeshNet.Netmap;
using Microsoft.Extensions.Logging;

namespace MeshNet.State;

/// <summary>
/// Keeps a node's <see cref="IMeshNetmapStore"/> up to date, coalescing: every applied netmap
/// marks the cache dirty (<see cref="OnNetmap"/>), and the latest one is saved at most once per
/// write interval (a timer on the <see cref="TimeProvider"/>). A netmap the service forbids to
/// keep deletes the stored copy, and nothing is saved until a netmap allows it again.
/// </summary>
/// <remarks>
/// <para>Never two store calls at once: one worker at a time runs them, in order. A failed save
/// is logged (a warning, rate-limited) and reported by <see cref="LastError"/>; the same netmap
/// is not retried by itself, the next change is saved as usual.</para>
/// <para>Thread-safe. <see cref="DisposeAsync"/> stops the timer, waits for a running save, and
/// writes the latest pending netmap (the flush when the node stops); after it, netmaps are ignored.</para>
/// </remarks>
internal sealed class NetmapCacheWriter : IAsyncDisposable
{

    private readonly IMeshNetmapStore _store;
    private readonly Func<MeshNodeIdentity> _identity;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly ITimer _timer;

    // Guarded by _lock.
    private PendingNetmap? _pending; // converted to the stored form by the worker, not on the caller's thread
    private bool _deletePending;
    private bool _forbidden;
    private bool _running;
    private bool _timerArmed;
    private bool _disposed;
    private long _nextSaveAllowed;
    private Task _worker = Task.CompletedTask;

    private volatile string? _lastError;
    private readonly LogRateLimit _failureLog; // a warning a minute at most

    /// <param name="store">Where the netmap goes.</param>
    /// <param name="identity">The node's current identity (its key protects the saved bytes; a key rotation replaces it).</param>
    /// <param name="interval">The shortest time between two saves.</param>
    /// <param name="time">The clock and timers.</param>
    /// <param name="logger">Where failures are logged.</param>
    public NetmapCacheWriter(IMeshNetmapStore store, Func<MeshNodeIdentity> identity, TimeSpan interval, TimeProvider time, ILogger logger)
    {
        _store = store;
        _identity = identity;
        _interval = interval;
        _time = time;
        _logger = logger;
        _nextSaveAllowed = time.GetTimestamp();
        _failureLog = new LogRateLimit(time, TimeSpan.FromMinutes(1));
        _timer = time.CreateTimer(static state => ((NetmapCacheWriter)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Why the last save failed; null once a save succeeded again (or none failed).</summary>
    public string? LastError => _lastError;

    /// <summary>
    /// A netmap was applied: saves it (received at <paramref name="receivedAt"/>) when the write
    /// interval allows, or marks it to be saved when it does. A netmap with
    /// <see cref="NetmapSnapshot.NetmapCacheForbidden"/> deletes the stored copy instead.
    /// </summary>
    public void OnNetmap(NetmapSnapshot snapshot, string tailnet, DateTimeOffset receivedAt)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            if (snapshot.NetmapCacheForbidden)
            {
                _pending = null;
                if (!_forbidden)
                {
                    _forbidden = true;
                    _deletePending = true;
                    _timerArmed = false;
                    _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    StartWorkerLocked();
                }
                return;
            }
            _forbidden = false;
            _pending = new PendingNetmap(snapshot, tailnet, receivedAt);
            if (_running || _timerArmed)
            {
                return; // the running worker or the armed timer picks it up
            }
            var due = DueLocked();
            if (due <= TimeSpan.Zero)
            {
                StartWorkerLocked();
            }
            else
            {
                _timerArmed = true;
                _timer.Change(due, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Stops the timer, waits for a running save, then saves the latest pending netmap. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        Task worker;
        lock (_lock)
        {
            if (_disposed)
            {
                worker = _worker;
            }
            else
            {
                _disposed = true;
                _timerArmed = false;
                _timer.Dispose();
                if (_pending is not null || _deletePending)
                {
                    StartWorkerLocked(); // the flush, on the pool: a synchronous store must not run under the lock
                }
                worker = _worker;
            }
        }
        await worker.ConfigureAwait(false);
    }

    // Under _lock.
    private TimeSpan DueLocked()
    {
        long now = _time.GetTimestamp();
        return now >= _nextSaveAllowed ? TimeSpan.Zero : _time.GetElapsedTime(now, _nextSaveAllowed);
    }

    // Under _lock; not running.
    private void StartWorkerLocked()
    {
        if (_running)
        {
            return;
        }
        _running = true;
        _worker = Task.Run(RunAsync);
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (!_timerArmed || _disposed)
            {
                return;
            }
            _timerArmed = false;
            if (_pending is null && !_deletePending)
            {
                return;
            }
            StartWorkerLocked();
        }
    }

    /// <summary>The worker: runs store calls one after the other while work is due, then stops.</summary>
    private async Task RunAsync()
    {
        while (true)
        {
            PendingNetmap? save;
            bool delete;
            lock (_lock)
            {
                delete = _deletePending;
                _deletePending = false;
                save = null;
                if (!delete && _pending is not null && (_disposed || DueLocked() <= TimeSpan.Zero))
                {
                    save = _pending;
                    _pending = null;
                }
                if (!delete && save is null)
                {
                    if (_pending is not null && !_disposed && !_timerArmed)
                    {
                        _timerArmed = true;
                        _timer.Change(DueLocked(), Timeout.InfiniteTimeSpan);
                    }
                    _running = false;
                    return;
                }
            }
            if (delete)
            {
                await DeleteAsync().ConfigureAwait(false);
            }
            else
            {
                await SaveAsync(save!.Value).ConfigureAwait(false);
            }
        }
    }

    private async Task SaveAsync(PendingNetmap pending)
    {
        try
        {
            var netmap = MeshCachedNetmap.From(pending.Snapshot, pending.Tailnet, pending.ReceivedAt);
            await _store.SaveAsync(_identity(), netmap).ConfigureAwait(false);
            _lastError = null;
            MeshLog.NetmapCacheSaved(_logger, netmap.Sequence, netmap.PeerCount);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The store's own message (MeshException) says what failed; anything else is a bug in
            // a custom store, reported the same way rather than taking the node down.
            _lastError = e.Message;
            LogFailure(e.Message);
        }
        finally
        {
            lock (_lock)
            {
                _nextSaveAllowed = _time.GetTimestamp() + (long)(_interval.TotalSeconds * _time.TimestampFrequency);
            }
        }
    }

    private async Task DeleteAsync()
    {
        try
        {
            await _store.DeleteAsync().ConfigureAwait(false);
            MeshLog.NetmapCacheDeleted(_logger, "the coordination service forbids this node to keep its netmap");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            MeshLog.NetmapCacheDeleteFailed(_logger, e.Message);
        }
    }

    private void LogFailure(string reason)
    {
        if (_failureLog.TryEnter(out long suppressed))
        {
            MeshLog.NetmapCacheSaveFailed(_logger, reason, suppressed);
        }
    }

    /// <summary>A netmap waiting to be saved, as applied.</summary>
    private readonly record struct PendingNetmap(NetmapSnapshot Snapshot, string Tailnet, DateTimeOffset ReceivedAt);
}
