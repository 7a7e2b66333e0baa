using Grpc.Core;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The buses of the tailnets this server serves, created on demand: the first user of a
/// tailnet loads its nodes from the store (holding the bus's write gate, so no change slips
/// between the load and the first publish), and a bus without sessions is retired by the
/// maintenance pass (the next user loads it afresh). Writers take the gate of an open bus with
/// <see cref="LockAsync"/>, so a write never lands on a bus that was retired or closed
/// meanwhile. Thread-safe.
/// </summary>
internal sealed class TailnetHub
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Task<TailnetBus?>> _buses = new(StringComparer.Ordinal);
    private readonly ICoordinationStore _store;
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private RpcException? _stopped;

    public TailnetHub(ICoordinationStore store, BusSettings settings, TimeProvider time, CoordinationCounters counters)
    {
        _store = store;
        _settings = settings;
        _time = time;
        _counters = counters;
    }

    /// <summary>The bus of <paramref name="tailnet"/>, loading it if needed; null when the tailnet does not exist.</summary>
    public async Task<TailnetBus?> GetAsync(string tailnet, CancellationToken cancellationToken)
    {
        Task<TailnetBus?> task;
        lock (_gate)
        {
            if (_stopped is not null)
            {
                throw _stopped;
            }
            if (!_buses.TryGetValue(tailnet, out task!) || task.IsFaulted || task.IsCanceled)
            {
                task = LoadAsync(tailnet);
                _buses[tailnet] = task;
            }
        }
        var bus = await task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (bus is null || bus.IsClosed)
        {
            Forget(tailnet, task);
            return bus is null ? null : await GetAsync(tailnet, cancellationToken).ConfigureAwait(false);
        }
        return bus;
    }

    /// <summary>
    /// Takes the write gate of the tailnet's open bus (loading it if needed); null when the
    /// tailnet does not exist.
    /// </summary>
    public async Task<TailnetWriteLease?> LockAsync(string tailnet, CancellationToken cancellationToken)
    {
        while (true)
        {
            var bus = await GetAsync(tailnet, cancellationToken).ConfigureAwait(false);
            if (bus is null)
            {
                return null;
            }
            await bus.WriteGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!bus.IsClosed)
            {
                return new TailnetWriteLease(bus);
            }
            bus.WriteGate.Release();
        }
    }

    /// <summary>Retires the loaded buses that have no sessions and no writer (their memory is freed).</summary>
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
    public void Close(string tailnet, RpcException failure)
    {
        Task<TailnetBus?>? task;
        lock (_gate)
        {
            _buses.Remove(tailnet, out task);
        }
        if (task is { IsCompletedSuccessfully: true, Result: { } bus })
        {
            bus.Close(failure);
        }
    }

    /// <summary>Closes every bus and refuses to load more (service stopping).</summary>
    /// <returns>How many streams were ended.</returns>
    public int CloseAll(RpcException failure)
    {
        lock (_gate)
        {
            _stopped ??= failure;
        }
        return Loaded().Sum(bus => bus.Close(failure));
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

    /// <summary>
    /// The stored policy, parsed. A policy that no longer parses (it was valid when saved) is
    /// enforced as one without rules: the tailnet fails closed rather than open.
    /// </summary>
    private static Policy.PolicyDocument? LoadPolicy(StoredPolicy? stored)
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

    private async Task<TailnetBus?> LoadAsync(string tailnet)
    {
        await Task.Yield();
        var stored = await _store.GetTailnetAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
        if (stored is null)
        {
            return null;
        }
        var bus = new TailnetBus(stored.Name, stored.Domain, _settings, _time, _counters);
        await bus.WriteGate.WaitAsync().ConfigureAwait(false);
        try
        {
            var nodes = await _store.ListNodesAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
            var policy = await _store.GetPolicyAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
            bus.Load(nodes, LoadPolicy(policy), policy?.Version ?? 0);
        }
        finally
        {
            bus.WriteGate.Release();
        }
        return bus;
    }
}
