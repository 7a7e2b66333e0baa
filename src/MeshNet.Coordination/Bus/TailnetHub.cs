using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Sharding;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The buses of the tailnets this server serves, created on demand under the tailnet's lease:
/// the first user of a tailnet acquires its lease (<see cref="LeaseKeeper.AcquireAsync"/>: a
/// fresh one held, or one claimed now; another server's answers NotOwner) and loads a snapshot
/// from the store into a bus stamped with the lease's epoch. A bus whose lease is lost or
/// superseded is closed (its streams end; nodes resume wherever the tailnet is served next),
/// and a bus without sessions is retired by the maintenance pass. Writers take the gate of an
/// open bus with <see cref="LockAsync"/> and commit through the scope's fence. Thread-safe.
/// </summary>
internal sealed class TailnetHub : ILeaseListener
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Task<TailnetBus?>> _buses = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (StoredTailnetState State, long At)> _warm = new(StringComparer.Ordinal);
    private readonly HashSet<string> _expectedHandovers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LiveStateWriter> _writers = new(StringComparer.Ordinal);
    private readonly ICoordinationStore _store;
    private readonly LeaseKeeper _keeper;
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly IncidentRecorder _recorder;
    private readonly ILogger _logger;
    private IReadOnlyList<string> _controlUrls = [];
    private CoordinationException? _stopped;

    public TailnetHub(ICoordinationStore store, LeaseKeeper keeper, BusSettings settings, TimeProvider time, CoordinationCounters counters,
        IncidentRecorder recorder, ILogger<TailnetHub> logger)
    {
        _recorder = recorder;
        Load = new LoadMeter(time, settings.LoadAveragingWindow);
        _store = store;
        _keeper = keeper;
        _settings = settings;
        _time = time;
        _counters = counters;
        _logger = logger;
    }

    public LeaseKeeper Keeper => _keeper;

    public ICoordinationStore Store => _store;

    public CoordinationCounters Counters => _counters;

    public ILogger Logger => _logger;

    public IncidentRecorder Recorder => _recorder;

    /// <summary>Node keys of the tailnets loaded here (a hint for map streams; the bus checks).</summary>
    public NodeLocator Locator { get; } = new();

    /// <summary>The load of the tailnets served here (change rates), for heartbeats and the rebalancer.</summary>
    public LoadMeter Load { get; }

    /// <summary>
    /// The bus of <paramref name="tailnet"/>, loading it if needed; null when the tailnet does not exist.
    /// </summary>
    /// <exception cref="CoordinationException">NotOwner, NoOwner, Quarantined (from the lease), or Unavailable (stopping).</exception>
    public async Task<TailnetBus?> GetAsync(string tailnet, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            var epoch = await _keeper.AcquireAsync(tailnet, cancellationToken).ConfigureAwait(false);
            if (epoch is null)
            {
                return null;
            }
            Task<TailnetBus?> task;
            TailnetBus? superseded = null;
            lock (_gate)
            {
                if (_stopped is not null)
                {
                    throw _stopped;
                }
                if (!_buses.TryGetValue(tailnet, out task!) || task.IsFaulted || task.IsCanceled ||
                    (task.IsCompletedSuccessfully && (task.Result is null || task.Result.IsClosed || task.Result.Epoch != epoch)))
                {
                    if (task is { IsCompletedSuccessfully: true, Result: { } old } && old.Epoch != epoch)
                    {
                        superseded = old;
                    }
                    task = LoadAsync(tailnet, epoch.Value);
                    _buses[tailnet] = task;
                }
            }
            superseded?.Close(Failures.Unavailable("the tailnet's lease was renewed under a new epoch; reconnect to resume"));
            var bus = await task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (bus is null)
            {
                Forget(tailnet, task);
                return null;
            }
            if (!bus.IsClosed && bus.Epoch == epoch)
            {
                return bus;
            }
            Forget(tailnet, task);
            if (attempt >= 3)
            {
                throw Failures.Unavailable($"tailnet '{tailnet}' is being reloaded; retry");
            }
        }
    }

    /// <summary>
    /// Takes the write gate of the tailnet's open bus (loading it if needed): the scope's
    /// <see cref="TailnetWriteScope.CommitAsync"/> writes under the bus's fence. Null when the
    /// tailnet does not exist.
    /// </summary>
    public async Task<TailnetWriteScope?> LockAsync(string tailnet, CancellationToken cancellationToken)
    {
        while (true)
        {
            var bus = await GetAsync(tailnet, cancellationToken).ConfigureAwait(false);
            if (bus is null)
            {
                return null;
            }
            await bus.WriteGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!bus.IsClosed && _keeper.FreshEpoch(tailnet) == bus.Epoch)
            {
                return new TailnetWriteScope(this, bus);
            }
            bus.WriteGate.Release();
            if (!bus.IsClosed)
            {
                // The lease went stale while waiting for the gate: renew (or learn it is gone) first.
                await _keeper.RenewOnceAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The live-state writer of <paramref name="tailnet"/> (group commit of its nodes' online
    /// state and endpoints), created on demand. An idle one is dropped once its tailnet has no
    /// bus loaded (<see cref="RetireIdle"/>); a caller still holding it may use it, it only
    /// batches apart from the next one.
    /// </summary>
    public LiveStateWriter LiveStateFor(string tailnet)
    {
        lock (_gate)
        {
            if (!_writers.TryGetValue(tailnet, out var writer))
            {
                writer = new LiveStateWriter(this, tailnet, _time);
                _writers[tailnet] = writer;
            }
            return writer;
        }
    }

    /// <summary>
    /// Retires the loaded buses that have no sessions and no writer (their memory is freed; the
    /// lease is kept), and drops the idle live-state writers of tailnets without a bus.
    /// </summary>
    /// <returns>How many buses were retired.</returns>
    public int RetireIdle()
    {
        int retired = 0;
        foreach (var bus in Loaded())
        {
            if (!bus.WriteGate.Wait(0))
            {
                continue;
            }
            try
            {
                if (bus.TryRetire())
                {
                    ForgetBus(bus);
                    retired++;
                }
            }
            finally
            {
                bus.WriteGate.Release();
            }
        }
        lock (_gate)
        {
            foreach (var (tailnet, writer) in _writers)
            {
                if (!_buses.ContainsKey(tailnet) && writer.IsIdle)
                {
                    _writers.Remove(tailnet);
                }
            }
        }
        return retired;
    }

    /// <summary>The bus of <paramref name="tailnet"/> if it is loaded; never loads.</summary>
    public TailnetBus? TryGetLoaded(string tailnet)
    {
        lock (_gate)
        {
            return _buses.TryGetValue(tailnet, out var task) && task.IsCompletedSuccessfully ? task.Result : null;
        }
    }

    /// <summary>The loaded buses (a snapshot).</summary>
    public IReadOnlyList<TailnetBus> Loaded()
    {
        lock (_gate)
        {
            return [.. _buses.Values.Where(task => task.IsCompletedSuccessfully && task.Result is not null).Select(task => task.Result!)];
        }
    }

    /// <summary>Closes the tailnet's bus (ending its streams) and forgets it.</summary>
    public void Close(string tailnet, CoordinationException failure) => Close(tailnet, _ => failure);

    /// <summary>Closes the tailnet's bus with a failure per stream, and forgets it.</summary>
    public int Close(string tailnet, Func<MapStream, CoordinationException> failureOf)
    {
        Task<TailnetBus?>? task;
        lock (_gate)
        {
            _buses.Remove(tailnet, out task);
        }
        return task is { IsCompletedSuccessfully: true, Result: { } bus } ? bus.Close(failureOf) : 0;
    }

    /// <summary>Closes the tailnet's bus at once and ends its streams spread over <paramref name="window"/>, and forgets it.</summary>
    public int CloseSpread(string tailnet, Func<MapStream, CoordinationException> failureOf, TimeSpan window, Random random)
    {
        Task<TailnetBus?>? task;
        lock (_gate)
        {
            _buses.Remove(tailnet, out task);
        }
        return task is { IsCompletedSuccessfully: true, Result: { } bus } ? bus.CloseSpread(failureOf, window, random) : 0;
    }

    /// <summary>Closes every bus and refuses to load more (service stopping).</summary>
    /// <returns>How many streams were ended.</returns>
    public int CloseAll(CoordinationException failure)
    {
        lock (_gate)
        {
            _stopped ??= failure;
        }
        return Loaded().Sum(bus => bus.Close(failure));
    }

    /// <summary>Tells every loaded bus (and buses loaded later) which coordination servers nodes may use.</summary>
    public void SetControlUrls(IReadOnlyList<string> urls)
    {
        lock (_gate)
        {
            _controlUrls = urls;
        }
        foreach (var bus in Loaded())
        {
            bus.SetControlUrls(urls);
        }
    }

    /// <summary>
    /// Reads a tailnet that is about to be handed over to this server, so that taking it on costs
    /// no store read when nothing changed since (the snapshot is used if the tailnet's revision is
    /// still the same when its bus loads). The snapshot is kept for a minute.
    /// </summary>
    /// <returns>The revision read.</returns>
    public async Task<ulong> PrepareAsync(string tailnet, CancellationToken cancellationToken)
    {
        var state = await _store.LoadTailnetAsync(tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotFound($"tailnet '{tailnet}' does not exist");
        lock (_gate)
        {
            _warm[tailnet] = (state, _time.GetTimestamp());
        }
        return state.Revision;
    }

    /// <summary>The next grant of <paramref name="tailnet"/> is a handover whose caller records it: not a failover.</summary>
    public void ExpectHandover(string tailnet, bool expected)
    {
        lock (_gate)
        {
            if (expected)
            {
                _expectedHandovers.Add(tailnet);
            }
            else
            {
                _expectedHandovers.Remove(tailnet);
            }
        }
    }

    /// <inheritdoc />
    public void OnLeaseGranted(LeaseGrant grant)
    {
        if (grant.Quarantined)
        {
            _ = RecordQuarantineAsync(grant);
            return;
        }
        lock (_gate)
        {
            if (_expectedHandovers.Contains(grant.Tailnet))
            {
                return;
            }
        }
        if (grant.PreviousOwner is null && !grant.Released)
        {
            _ = LoadQuietlyAsync(grant.Tailnet, null); // a tailnet nobody served yet: warm its bus, nothing to measure
            return;
        }
        // Another owner stopped serving it (died, paused, cut off, or stopped cleanly): a standby takes it on.
        var detect = grant.PreviousRenewal is { } renewal && grant.GrantedAt > renewal ? grant.GrantedAt - renewal : TimeSpan.Zero;
        string cause = grant.Released ? IncidentCauses.Release : IncidentCauses.Failover;
        string subject = grant.PreviousOwner ?? "(released)";
        var takeover = new TailnetTakeover(grant.Tailnet, grant.Epoch, cause, $"{cause}:{subject}:{grant.PreviousInstance ?? grant.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            subject, _time.GetTimestamp() - (long)(detect.TotalSeconds * _time.TimestampFrequency), grant.GrantedAt - detect, detect);
        _ = LoadQuietlyAsync(grant.Tailnet, takeover);
    }

    /// <summary>Loads the tailnet's bus now (hot standby) and, for a takeover, starts measuring which of its nodes come back.</summary>
    public async Task LoadQuietlyAsync(string tailnet, TailnetTakeover? takeover)
    {
        try
        {
            var bus = await GetAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
            if (bus is not null && takeover is not null)
            {
                _recorder.Begin(takeover, bus.OnlineNodes());
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.LeaseRoundFailed(_logger, $"loading {tailnet} after its lease was granted: {exception.Message}");
        }
    }

    private async Task RecordQuarantineAsync(LeaseGrant grant)
    {
        try
        {
            await _recorder.QuarantinedAsync(grant, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.IncidentWriteFailed(_logger, $"quarantine:{grant.Tailnet}", exception.Message);
        }
    }

    /// <inheritdoc />
    public void OnLeaseLost(string tailnet, ulong epoch, LeaseLoss reason)
    {
        Load.Forget(tailnet);
        if (TryGetLoaded(tailnet) is { } bus && bus.Epoch == epoch && reason != LeaseLoss.Released)
        {
            // Nodes come back (here or to any server) and are sent on to wherever it is served now.
            var retry = TimeSpan.FromMilliseconds(100);
            Close(tailnet, _ => Failures.NoOwner(tailnet, retry, reason == LeaseLoss.Lapsed ? "its lease could not be renewed" : "its lease moved"));
        }
    }

    /// <summary>
    /// A write's outcome is unknown (the store failed mid-commit): when the store's revision moved
    /// past the bus's, the bus is closed so that it reloads (its nodes resume from the change log).
    /// </summary>
    public async Task ReconcileAsync(TailnetBus bus)
    {
        try
        {
            var lease = await _keeper.Store.GetLeaseAsync(bus.Tailnet, CancellationToken.None).ConfigureAwait(false);
            if (lease is not null && lease.Revision == bus.Revision)
            {
                return; // nothing was committed
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.WriteOutcomeUnknown(_logger, bus.Tailnet, exception.Message);
        }
        Close(bus.Tailnet, Failures.Unavailable("the tailnet is being reloaded; reconnect to resume"));
    }

    /// <summary>
    /// The stored policy, parsed. A policy that no longer parses (it was valid when saved) is
    /// enforced as one without rules: the tailnet fails closed rather than open.
    /// </summary>
    public static Policy.PolicyDocument? ParsePolicy(StoredPolicy? stored)
    {
        if (stored is null || string.IsNullOrWhiteSpace(stored.Text))
        {
            return null;
        }
        try
        {
            return Policy.PolicyParser.Parse(stored.Text);
        }
        catch (Policy.PolicyException)
        {
            return Policy.PolicyParser.Parse("{}");
        }
    }

    /// <summary>The prepared snapshot of the tailnet when it is recent and nothing was committed since.</summary>
    private async Task<StoredTailnetState?> WarmStateAsync(string tailnet)
    {
        (StoredTailnetState State, long At) warm;
        lock (_gate)
        {
            if (!_warm.Remove(tailnet, out warm) || _time.GetElapsedTime(warm.At) > TimeSpan.FromMinutes(1))
            {
                return null;
            }
        }
        var lease = await _keeper.Store.GetLeaseAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
        return lease is not null && lease.Revision == warm.State.Revision ? warm.State : null;
    }

    private void ForgetBus(TailnetBus bus)
    {
        lock (_gate)
        {
            if (_buses.TryGetValue(bus.Tailnet, out var task) && task.IsCompletedSuccessfully && task.Result == bus)
            {
                _buses.Remove(bus.Tailnet);
            }
        }
    }

    private void Forget(string tailnet, Task<TailnetBus?> task)
    {
        lock (_gate)
        {
            if (_buses.TryGetValue(tailnet, out var current) && current == task)
            {
                _buses.Remove(tailnet);
            }
        }
    }

    private async Task<TailnetBus?> LoadAsync(string tailnet, ulong epoch)
    {
        await Task.Yield();
        var state = await WarmStateAsync(tailnet).ConfigureAwait(false)
            ?? await _store.LoadTailnetAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
        if (state is null)
        {
            return null;
        }
        var bus = new TailnetBus(state.Tailnet.Name, state.Tailnet.Domain, epoch, _settings, _time, _counters);
        bus.Load(state);
        foreach (var node in state.Nodes)
        {
            Locator.Remember(node);
        }
        IReadOnlyList<string> urls;
        lock (_gate)
        {
            urls = _controlUrls;
        }
        bus.SetControlUrls(urls);
        return bus;
    }
}
