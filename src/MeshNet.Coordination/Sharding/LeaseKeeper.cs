using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// This server's leases: registers the server, renews every lease it holds in one statement per
/// <see cref="LeaseSettings.RenewInterval"/>, claims expired leases (hot standby) and tailnets
/// asked for on demand, and <b>self-fences</b>: a lease is served only until the monotonic time
/// at which its last successful renewal was <i>sent</i> plus TTL minus the margin, so that this
/// server has stopped before the database could consider the lease expired.
/// </summary>
/// <remarks>
/// <para>A lease past its deadline is first re-checked with a renewal started then (a clock that
/// jumped, a slow statement), all within half the margin; only if that fails is it declared lapsed
/// (<see cref="LeaseLoss.Lapsed"/>), and a later renewal that still returns it with the same epoch
/// revives it. A renewal that no longer returns a lease means another server holds it
/// (<see cref="LeaseLoss.Taken"/>).</para>
/// <para>Thread-safe: <c>_gate</c> guards the held leases (no I/O under it); renewals run one at
/// a time (<c>_renewGate</c>); the listener is called outside the lock. Timers are one-shot and
/// re-armed after each round, on the injected clock.</para>
/// </remarks>
internal sealed partial class LeaseKeeper : IAsyncDisposable
{
    private readonly ICoordinationLeaseStore _store;
    private readonly LeaseSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Held> _held = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _renewGate = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ILeaseListener? _listener;
    private ITimer? _renewTimer;
    private ITimer? _claimTimer;
    private ITimer? _lapseTimer;
    private volatile bool _replaced;
    private volatile bool _draining;
    private long _lastReachedStore;
    private int _stopped;

    public LeaseKeeper(ICoordinationLeaseStore store, ServerIdentity server, LeaseSettings settings, TimeProvider time, CoordinationCounters counters,
        ILogger<LeaseKeeper> logger)
    {
        _store = store;
        Server = server;
        _settings = settings;
        _time = time;
        _counters = counters;
        _logger = logger;
    }

    /// <summary>This server.</summary>
    public ServerIdentity Server { get; private set; }

    public LeaseSettings Settings => _settings;

    /// <summary>The lease store.</summary>
    public ICoordinationLeaseStore Store => _store;

    /// <summary>Completes once the server is registered and its first claim round ran.</summary>
    public Task Started => _started.Task;

    /// <summary>True while this server is being drained: it claims nothing.</summary>
    public bool Draining
    {
        get => _draining;
        set => _draining = value;
    }

    /// <summary>Sets who hears about grants and losses. Called once, before <see cref="StartAsync"/>.</summary>
    public void SetListener(ILeaseListener listener) => _listener = listener;

    /// <summary>The tailnets this server holds a fresh lease on, with their epochs (a snapshot).</summary>
    public IReadOnlyList<HeldLease> HeldLeases()
    {
        long now = _time.GetTimestamp();
        lock (_gate)
        {
            return [.. _held.Where(pair => pair.Value.IsFresh(now)).Select(pair => new HeldLease(pair.Key, pair.Value.Epoch))];
        }
    }

    /// <summary>Registers this server and takes back its own leases from a previous run, then starts renewing and claiming.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            long sentAt = _time.GetTimestamp();
            await _store.RegisterServerAsync(Server.Id, Server.Url, Server.Instance, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _lastReachedStore, sentAt);
            await ClaimRoundAsync(null, cancellationToken).ConfigureAwait(false);
            _renewTimer = _time.CreateTimer(static state => ((LeaseKeeper)state!).OnRenewTick(), this, _settings.RenewInterval, Timeout.InfiniteTimeSpan);
            _claimTimer = _time.CreateTimer(static state => ((LeaseKeeper)state!).OnClaimTick(), this, _settings.ClaimInterval, Timeout.InfiniteTimeSpan);
            _lapseTimer = _time.CreateTimer(static state => ((LeaseKeeper)state!).OnLapseTick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            ArmLapseTimer();
            CoordinationLog.ServerRegistered(_logger, Server.Id, Server.Url, Server.Instance);
            _started.TrySetResult();
        }
        catch (Exception exception)
        {
            _started.TrySetException(exception);
            throw;
        }
    }

    /// <summary>Records the URL this server is reachable at (known once the host has bound its addresses).</summary>
    public async Task SetUrlAsync(string url, CancellationToken cancellationToken)
    {
        Server = Server with { Url = url };
        await _store.RegisterServerAsync(Server.Id, url, Server.Instance, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// How long since a renewal last reached the store, when that is longer than the lease TTL (every
    /// lease this server had has lapsed: it is cut off from the database, or was paused); null
    /// otherwise and before the server started. Requests are then refused at once rather than left
    /// to hang on the database.
    /// </summary>
    public TimeSpan? CutOffFor
    {
        get
        {
            long last = Volatile.Read(ref _lastReachedStore);
            if (last == 0)
            {
                return null;
            }
            var since = _time.GetElapsedTime(last);
            return since > _settings.Ttl ? since : null;
        }
    }

    /// <summary>The epoch of a fresh lease on <paramref name="tailnet"/>, or null.</summary>
    public ulong? FreshEpoch(string tailnet)
    {
        long now = _time.GetTimestamp();
        lock (_gate)
        {
            return _held.TryGetValue(tailnet, out var held) && held.IsFresh(now) ? held.Epoch : null;
        }
    }

    /// <summary>
    /// The epoch under which this server may serve <paramref name="tailnet"/> now: a fresh lease it
    /// holds, one renewed now (it was past its deadline), or one claimed now (free or expired).
    /// Null when the tailnet does not exist.
    /// </summary>
    /// <exception cref="CoordinationException">NotOwner (another server serves it), NoOwner (nobody can right now), Quarantined.</exception>
    public async Task<ulong?> AcquireAsync(string tailnet, CancellationToken cancellationToken)
    {
        await _started.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (FreshEpoch(tailnet) is { } fresh)
        {
            return fresh;
        }
        bool held;
        lock (_gate)
        {
            held = _held.ContainsKey(tailnet);
        }
        if (held)
        {
            await RenewOnceAsync(cancellationToken).ConfigureAwait(false);
            if (FreshEpoch(tailnet) is { } renewed)
            {
                return renewed;
            }
        }
        if (!_replaced && !_draining)
        {
            var grants = await ClaimRoundAsync(tailnet, cancellationToken).ConfigureAwait(false);
            foreach (var grant in grants)
            {
                if (grant.Tailnet == tailnet && grant.Quarantined)
                {
                    throw Quarantined(tailnet);
                }
            }
            if (FreshEpoch(tailnet) is { } claimed)
            {
                return claimed;
            }
        }
        var lease = await _store.GetLeaseAsync(tailnet, cancellationToken).ConfigureAwait(false);
        if (lease is null)
        {
            return null;
        }
        if (lease.Quarantined)
        {
            throw Quarantined(tailnet);
        }
        if (lease.Owner is { } owner && lease.ExpiresIn > TimeSpan.Zero && (owner != Server.Id || lease.OwnerInstance != Server.Instance))
        {
            if (lease.OwnerHeartbeatAge > _settings.RenewInterval * 3)
            {
                // Its owner stopped heartbeating: most likely dead, its lease merely not expired yet.
                // Sending nodes there would only bounce them; a standby claims it at expiry.
                throw Failures.NoOwner(tailnet, lease.ExpiresIn + _settings.ClaimInterval, $"its owner {owner} stopped renewing; a standby takes it over");
            }
            if (lease.OwnerUrl is { Length: > 0 } url && owner != Server.Id)
            {
                throw Failures.NotOwner(tailnet, url, lease.Epoch);
            }
            throw Failures.NoOwner(tailnet, Max(lease.ExpiresIn, _settings.ClaimInterval), $"its owner {owner} has not confirmed its address yet");
        }
        if (lease.Owner == Server.Id && lease.OwnerInstance == Server.Instance)
        {
            throw Failures.NoOwner(tailnet, _settings.RenewInterval, "this server cannot renew its lease: the database is unreachable or slow");
        }
        string why = _draining ? "this server is draining" : _replaced ? "this server was replaced" : "its owner stopped; a standby is taking it over";
        // A standby claims an expired lease within a claim interval of its expiry.
        throw Failures.NoOwner(tailnet, Max(lease.ExpiresIn, TimeSpan.Zero) + _settings.ClaimInterval, why);
    }

    /// <summary>
    /// After a write was refused by its fence: renews now and says whether the lease is still this
    /// server's with <paramref name="epoch"/> (the refusal came from a clock that moved, not a takeover).
    /// A lease that is gone is reported lost.
    /// </summary>
    public async Task<bool> ConfirmAsync(string tailnet, ulong epoch, CancellationToken cancellationToken)
    {
        await RenewOnceAsync(cancellationToken).ConfigureAwait(false);
        return FreshEpoch(tailnet) == epoch;
    }

    /// <summary>Takes a lease granted by a handover this server performed (it is the target).</summary>
    public void AddGranted(LeaseGrant grant, long sentAt)
    {
        lock (_gate)
        {
            _held[grant.Tailnet] = new Held(grant.Epoch, sentAt + Ticks(_settings.Ttl - _settings.Margin), sentAt);
        }
        ArmLapseTimer();
        _listener?.OnLeaseGranted(grant);
    }

    /// <summary>
    /// Marks a lease as being handed over (or no longer): while it is, a renewal that does not
    /// return it does not report it lost (the handover's own compare-and-set took it); the mover
    /// then forgets it, or clears the mark when the handover did not happen.
    /// </summary>
    public void SetHandingOver(string tailnet, ulong epoch, bool handingOver)
    {
        lock (_gate)
        {
            if (_held.TryGetValue(tailnet, out var held) && held.Epoch == epoch)
            {
                held.HandingOver = handingOver;
            }
        }
    }

    /// <summary>Forgets a lease this server gave up (handover, release); the listener hears <see cref="LeaseLoss.Released"/>.</summary>
    public void Forget(string tailnet, ulong epoch)
    {
        bool removed;
        lock (_gate)
        {
            removed = _held.TryGetValue(tailnet, out var held) && held.Epoch == epoch && _held.Remove(tailnet);
        }
        if (removed)
        {
            _listener?.OnLeaseLost(tailnet, epoch, LeaseLoss.Released);
        }
    }

    /// <summary>A monotonic timestamp taken before a store call whose grant it bounds.</summary>
    public long Timestamp() => _time.GetTimestamp();

    /// <summary>Stops renewing and claiming, gives every lease up (standbys take them at once) and deregisters. Idempotent.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }
        _stopping.Cancel();
        DisposeTimers();
        if (!_started.Task.IsCompletedSuccessfully)
        {
            return;
        }
        List<(string Tailnet, ulong Epoch)> held;
        lock (_gate)
        {
            held = [.. _held.Select(pair => (pair.Key, pair.Value.Epoch))];
            _held.Clear();
        }
        foreach (var (tailnet, epoch) in held)
        {
            _listener?.OnLeaseLost(tailnet, epoch, LeaseLoss.Released);
            try
            {
                await _store.ReleaseAsync(tailnet, Server.Id, epoch, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                CoordinationLog.LeaseReleaseFailed(_logger, tailnet, exception.Message);
            }
        }
        try
        {
            await _store.DeregisterServerAsync(Server.Id, Server.Instance, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.LeaseReleaseFailed(_logger, "(server registration)", exception.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>One renewal, started after any renewal in flight has finished (so its send time is now).</summary>
    public Task RenewOnceAsync(CancellationToken cancellationToken) => RenewOnceAsync(cancellationToken, _settings.RenewTimeout, Timeout.InfiniteTimeSpan);

    /// <summary>
    /// One renewal taking at most <paramref name="timeout"/>, after waiting at most
    /// <paramref name="gateWait"/> for one in flight (none happens when that wait runs out).
    /// </summary>
    private async Task RenewOnceAsync(CancellationToken cancellationToken, TimeSpan timeout, TimeSpan gateWait)
    {
        if (!await _renewGate.WaitAsync(gateWait, cancellationToken).ConfigureAwait(false))
        {
            return;
        }
        try
        {
            await RenewCoreAsync(cancellationToken, timeout).ConfigureAwait(false);
        }
        finally
        {
            _renewGate.Release();
        }
    }

    private async Task RenewCoreAsync(CancellationToken cancellationToken, TimeSpan timeout)
    {
        if (_replaced || _stopping.IsCancellationRequested)
        {
            return;
        }
        long sentAt = _time.GetTimestamp();
        LeaseRenewal renewal;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        limit.CancelAfter(timeout);
        try
        {
            // Bounded by the timeout itself, not only by cancellation: a driver may take seconds to
            // give up a statement on a connection the network silently dropped (Npgsql tries to
            // cancel it on the server first), and the lapse re-check must end within its budget.
            var pending = _store.RenewAsync(Server.Id, Server.Instance, _settings.Ttl, LoadReport?.Invoke() ?? "", limit.Token);
            _ = pending.ContinueWith(static task => _ = task.Exception, CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            renewal = await pending.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException && !cancellationToken.IsCancellationRequested)
        {
            _counters.LeaseRenewalFailed();
            CoordinationLog.LeaseRenewalFailed(_logger, exception.Message);
            return;
        }
        _counters.LeaseRenewed();
        Volatile.Write(ref _lastReachedStore, sentAt);
        var lost = new List<(string, ulong, LeaseLoss)>();
        var gained = new List<LeaseGrant>();
        long deadline = sentAt + Ticks(_settings.Ttl - _settings.Margin);
        lock (_gate)
        {
            if (!renewal.Registered)
            {
                _replaced = true;
                lost.AddRange(_held.Select(pair => (pair.Key, pair.Value.Epoch, LeaseLoss.Replaced)));
                _held.Clear();
            }
            else
            {
                var returned = renewal.Held.ToDictionary(lease => lease.Tailnet, lease => lease.Epoch, StringComparer.Ordinal);
                foreach (var (tailnet, held) in _held.ToList())
                {
                    if (returned.TryGetValue(tailnet, out var epoch) && epoch == held.Epoch)
                    {
                        held.Deadline = Math.Max(held.Deadline, deadline);
                        held.Lapsed = false;
                    }
                    else if (held.GrantedAt < sentAt && !held.HandingOver)
                    {
                        _held.Remove(tailnet);
                        lost.Add((tailnet, held.Epoch, LeaseLoss.Taken));
                    }
                }
                foreach (var lease in renewal.Held)
                {
                    if (!_held.ContainsKey(lease.Tailnet))
                    {
                        // Held in the database but unknown here: a handover to this server whose answer was lost.
                        _held[lease.Tailnet] = new Held(lease.Epoch, deadline, sentAt);
                        gained.Add(new LeaseGrant(lease.Tailnet, lease.Epoch, null, null, null, _time.GetUtcNow()));
                    }
                }
            }
        }
        if (_replaced && lost.Count > 0)
        {
            CoordinationLog.ServerReplaced(_logger, Server.Id);
        }
        Notify(gained, lost);
        ArmLapseTimer();
    }

    /// <summary>One claim round (all expired leases up to the limit, or only <paramref name="tailnet"/>).</summary>
    private async Task<IReadOnlyList<LeaseGrant>> ClaimRoundAsync(string? tailnet, CancellationToken cancellationToken)
    {
        if (_replaced || _draining)
        {
            return [];
        }
        long sentAt = _time.GetTimestamp();
        var grants = await _store.ClaimAsync(new LeaseClaim(Server.Id, Server.Instance, _settings.Ttl, tailnet is null ? _settings.ClaimLimit : 1,
            _settings.StickyPeriod, _settings.QuarantineWindow, tailnet), cancellationToken).ConfigureAwait(false);
        if (grants.Count == 0)
        {
            return grants;
        }
        long deadline = sentAt + Ticks(_settings.Ttl - _settings.Margin);
        lock (_gate)
        {
            foreach (var grant in grants)
            {
                if (!grant.Quarantined)
                {
                    _held[grant.Tailnet] = new Held(grant.Epoch, deadline, sentAt);
                }
            }
        }
        foreach (var grant in grants)
        {
            if (grant.Quarantined)
            {
                _counters.TailnetQuarantined();
                CoordinationLog.TailnetQuarantined(_logger, grant.Tailnet);
            }
            else
            {
                _counters.LeaseClaimed();
                CoordinationLog.LeaseClaimed(_logger, grant.Tailnet, grant.Epoch, grant.PreviousOwner ?? "(none)");
            }
        }
        Notify(grants, []);
        ArmLapseTimer();
        return grants;
    }

    /// <summary>Reports this server's load with each heartbeat (JSON), when set.</summary>
    public Func<string>? LoadReport { get; set; }

    private void Notify(IReadOnlyList<LeaseGrant> gained, IReadOnlyList<(string Tailnet, ulong Epoch, LeaseLoss Reason)> lost)
    {
        var listener = _listener;
        foreach (var (tailnet, epoch, reason) in lost)
        {
            _counters.LeaseLost();
            CoordinationLog.LeaseLost(_logger, tailnet, epoch, reason.ToString());
            listener?.OnLeaseLost(tailnet, epoch, reason);
        }
        foreach (var grant in gained)
        {
            listener?.OnLeaseGranted(grant);
        }
    }

    private void OnRenewTick() => _ = RunRoundAsync(RenewOnceAsync, _renewTimer, _settings.RenewInterval);

    private void OnClaimTick() => _ = RunRoundAsync(token => ClaimRoundAsync(null, token), _claimTimer, _settings.ClaimInterval);

    private async Task RunRoundAsync(Func<CancellationToken, Task> round, ITimer? timer, TimeSpan next)
    {
        try
        {
            await round(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            return;
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.LeaseRoundFailed(_logger, exception.Message);
        }
        try
        {
            timer?.Change(next, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }
    private void DisposeTimers()
    {
        _renewTimer?.Dispose();
        _claimTimer?.Dispose();
        _lapseTimer?.Dispose();
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static CoordinationException Quarantined(string tailnet) =>
        new(CoordinationErrorCode.Quarantined, $"tailnet '{tailnet}' is quarantined (its owners crashed); an administrator must release it");

    /// <summary>One held lease; guarded by <c>_gate</c>.</summary>
    private sealed class Held(ulong epoch, long deadline, long grantedAt)
    {
        public ulong Epoch { get; } = epoch;

        /// <summary>The monotonic time until which it may be served.</summary>
        public long Deadline { get; set; } = deadline;

        /// <summary>When it was granted here (a renewal sent before that does not know it).</summary>
        public long GrantedAt { get; } = grantedAt;

        /// <summary>Declared lapsed: not served until a renewal revives it.</summary>
        public bool Lapsed { get; set; }

        /// <summary>Being handed over by this server: its absence from a renewal is expected.</summary>
        public bool HandingOver { get; set; }

        public bool IsFresh(long now) => !Lapsed && now < Deadline;
    }
}
