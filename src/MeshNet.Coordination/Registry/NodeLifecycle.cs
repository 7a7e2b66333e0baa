using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// Ends of node life and time-driven work: deleting nodes, expiring keys, and the maintenance
/// pass (key expiry reaching its time, ephemeral nodes offline too long, map sessions past
/// their retention), all on the injected clock. Passes never overlap.
/// </summary>
internal sealed class NodeLifecycle
{
    private const int PageSize = 500;

    private readonly ICoordinationStore _store;
    private readonly TailnetHub _hub;
    private readonly CoordinationRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly TimeSpan _ephemeralTimeout;
    private readonly SemaphoreSlim _pass = new(1, 1);
    private DateTimeOffset? _expiryCheckedUpTo;

    public NodeLifecycle(ICoordinationStore store, TailnetHub hub, CoordinationRuntime runtime, CoordinationOptions options, TimeProvider time,
        CoordinationCounters counters, ILogger<NodeLifecycle> logger)
    {
        _store = store;
        _hub = hub;
        _runtime = runtime;
        _time = time;
        _counters = counters;
        _logger = logger;
        _ephemeralTimeout = options.EphemeralNodeTimeout;
    }

    /// <summary>Deletes a node of <paramref name="tailnet"/>: peers get a removal, its own stream ends. False when there is no such node.</summary>
    public async Task<bool> DeleteNodeAsync(string tailnet, ulong id, string cause, CancellationToken cancellationToken,
        Func<StoredNode, TailnetBus, bool>? stillApplies = null)
    {
        using var lease = await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false);
        if (lease is not { Bus: var bus })
        {
            return false;
        }
        var node = await _store.GetNodeAsync(id, cancellationToken).ConfigureAwait(false);
        if (node is null || node.Tailnet != tailnet || (stillApplies is not null && !stillApplies(node, bus)))
        {
            return false;
        }
        await _store.DeleteNodeAsync(id, cancellationToken).ConfigureAwait(false);
        bus.Remove(id, Failures.NotRegistered("the node was removed from the tailnet"));
        CoordinationLog.NodeRemoved(_logger, id, tailnet, cause);
        return true;
    }

    /// <summary>Expires a node's key now: peers see the expiry, its stream ends with node-key-expired. False when there is no such node.</summary>
    public async Task<bool> ExpireKeyAsync(string tailnet, ulong id, CancellationToken cancellationToken)
    {
        using var lease = await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false);
        if (lease is not { Bus: var bus })
        {
            return false;
        }
        var node = await _store.GetNodeAsync(id, cancellationToken).ConfigureAwait(false);
        if (node is null || node.Tailnet != tailnet)
        {
            return false;
        }
        var now = _time.GetUtcNow();
        var expiry = node.KeyExpiry < now ? node.KeyExpiry : now;
        await _store.SetKeyExpiryAsync(id, expiry, cancellationToken).ConfigureAwait(false);
        bus.SetKeyExpiry(id, expiry, now);
        _counters.NodeKeyExpired();
        CoordinationLog.NodeKeyExpired(_logger, id, tailnet);
        return true;
    }

    /// <summary>One maintenance pass at the clock's current time. Safe to call at any time (tests do).</summary>
    public async Task RunMaintenanceAsync(CancellationToken cancellationToken)
    {
        await _runtime.EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        await _pass.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            await ExpireKeysAsync(now, cancellationToken).ConfigureAwait(false);
            await RemoveIdleEphemeralNodesAsync(now, cancellationToken).ConfigureAwait(false);
            foreach (var bus in _hub.Loaded())
            {
                bus.PruneSessions(now);
            }
            _hub.RetireIdle();
            _counters.MaintenancePass();
        }
        finally
        {
            _pass.Release();
        }
    }

    /// <summary>Keys whose expiry passed since the last pass: streams end, peers get the expiry. Nothing to write.</summary>
    private async Task ExpireKeysAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var after = _expiryCheckedUpTo ?? _runtime.StartedAt;
        while (true)
        {
            var due = await _store.ListNodesWithKeyExpiryAsync(after, now, PageSize, cancellationToken).ConfigureAwait(false);
            foreach (var node in due)
            {
                if (_hub.TryGetLoaded(node.Tailnet) is { } bus)
                {
                    bus.SetKeyExpiry(node.Id, node.KeyExpiry, now);
                }
                _counters.NodeKeyExpired();
                CoordinationLog.NodeKeyExpired(_logger, node.Id, node.Tailnet);
            }
            if (due.Count < PageSize)
            {
                break;
            }
            after = due[^1].KeyExpiry;
        }
        _expiryCheckedUpTo = now;
    }

    /// <summary>
    /// Removes ephemeral nodes offline for longer than the timeout. After a restart every node
    /// gets the full timeout to reconnect. An online node met here had its last-seen refreshed
    /// (it is online now), so it leaves the candidates for a timeout's length.
    /// </summary>
    private async Task RemoveIdleEphemeralNodesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (now - _runtime.StartedAt < _ephemeralTimeout)
        {
            return;
        }
        var cutoff = now - _ephemeralTimeout;
        var idle = await _store.ListEphemeralNodesIdleSinceAsync(cutoff, PageSize, cancellationToken).ConfigureAwait(false);
        foreach (var node in idle)
        {
            if (_hub.TryGetLoaded(node.Tailnet)?.IsOnline(node.Id) == true)
            {
                await _store.SetLastSeenAsync(node.Id, now, cancellationToken).ConfigureAwait(false);
                continue;
            }
            bool removed = await DeleteNodeAsync(node.Tailnet, node.Id, "ephemeral, offline too long", cancellationToken,
                (current, bus) => !bus.IsOnline(current.Id) && (current.LastSeen ?? current.Created) < cutoff).ConfigureAwait(false);
            if (removed)
            {
                _counters.EphemeralNodeRemoved();
            }
        }
    }
}
