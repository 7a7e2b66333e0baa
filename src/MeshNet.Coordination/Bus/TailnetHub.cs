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
    private readonly ICoordinationStore _store;
    private readonly LeaseKeeper _keeper;
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private IReadOnlyList<string> _controlUrls = [];
    private CoordinationException? _stopped;

    public TailnetHub(ICoordinationStore store, LeaseKeeper keeper, BusSettings settings, TimeProvider time, CoordinationCounters counters,
        ILogger<TailnetHub> logger)
    {
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

    /// <summary>Retires the loaded buses that have no sessions and no writer (their memory is freed; the lease is kept).</summary>
    /// <returns>How many were retired.</returns>
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

    /// <inheritdoc />
    public void OnLeaseGranted(LeaseGrant grant)
    {
    }

    /// <inheritdoc />
    public void OnLeaseLost(string tailnet, ulong epoch, LeaseLoss reason)
    {
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
        var state = await _store.LoadTailnetAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
        if (state is null)
        {
            return null;
        }
        var bus = new TailnetBus(state.Tailnet.Name, state.Tailnet.Domain, epoch, _settings, _time, _counters);
        bus.Load(state);
        IReadOnlyList<string> urls;
        lock (_gate)
        {
            urls = _controlUrls;
        }
        bus.SetControlUrls(urls);
        return bus;
    }
}
