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
    private const int ChangeLogKeep = 1000;

    private readonly ICoordinationStore _store;
    private readonly TailnetHub _hub;
    private readonly CoordinationRuntime _runtime;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly TimeSpan _ephemeralTimeout;
    private readonly TimeSpan _reconnectGrace;
    private readonly TimeSpan _changeLogRetention;
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
        _reconnectGrace = options.ReconnectGrace;
        _changeLogRetention = options.ChangeLogRetention;
    }

    /// <summary>
    /// Deletes a node of <paramref name="tailnet"/>: peers get a removal, its own stream ends. False
    /// when there is no such node. With an idempotency key, a retry of a delete that was applied
    /// returns true.
    /// </summary>
    public async Task<bool> DeleteNodeAsync(string tailnet, ulong id, string cause, CancellationToken cancellationToken,
        Func<StoredNode, TailnetBus, bool>? stillApplies = null, string? idempotencyKey = null)
    {
        using var scope = await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false);
        if (scope is not { Bus: var bus })
        {
            return false;
        }
        var node = await _store.GetNodeAsync(id, cancellationToken).ConfigureAwait(false);
        if (node is null || node.Tailnet != tailnet || (stillApplies is not null && !stillApplies(node, bus)))
        {
            return idempotencyKey is not null && await AppliedBeforeAsync(scope, idempotencyKey, cancellationToken).ConfigureAwait(false);
        }
        if (stillApplies is null)
        {
            scope.Charge(); // an administrator's delete (the service's own removals are not charged)
        }
        var result = await scope.CommitAsync(fence => _store.DeleteNodeAsync(fence, id, cancellationToken), cancellationToken, idempotencyKey)
            .ConfigureAwait(false);
        if (result.Status == FencedStatus.Duplicate)
        {
            return true;
        }
        if (!result.IsCommitted)
        {
            return false;
        }
        bus.Remove(id, result.Revision, Failures.NotRegistered("the node was removed from the tailnet"));
        CoordinationLog.NodeRemoved(_logger, id, tailnet, cause);
        return true;
    }

    /// <summary>Expires a node's key now: peers see the expiry, its stream ends with node-key-expired. False when there is no such node.</summary>
    public async Task<bool> ExpireKeyAsync(string tailnet, ulong id, CancellationToken cancellationToken, string? idempotencyKey = null)
    {
        using var scope = await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false);
        if (scope is not { Bus: var bus })
        {
            return false;
        }
        var node = await _store.GetNodeAsync(id, cancellationToken).ConfigureAwait(false);
        if (node is null || node.Tailnet != tailnet)
        {
            return idempotencyKey is not null && await AppliedBeforeAsync(scope, idempotencyKey, cancellationToken).ConfigureAwait(false);
        }
        var now = _time.GetUtcNow();
        var expiry = node.KeyExpiry < now ? node.KeyExpiry : now;
        scope.Charge();
        var result = await scope.CommitAsync(fence => _store.SetKeyExpiryAsync(fence, id, expiry, cancellationToken), cancellationToken, idempotencyKey)
            .ConfigureAwait(false);
        if (result.Status == FencedStatus.Duplicate)
        {
            return true;
        }
        if (!result.IsCommitted)
        {
            return false;
        }
        bus.SetKeyExpiry(id, expiry, now, result.Revision);
        _counters.NodeKeyExpired();
        CoordinationLog.NodeKeyExpired(_logger, id, tailnet);
        return true;
    }

    /// <summary>Writes nodes offline that are marked online but have had no stream here since the grace after the bus loaded.</summary>
    private async Task MarkAbsentNodesOfflineAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        foreach (var loaded in _hub.Loaded())
        {
            if (loaded.OnlineWithoutStream(_reconnectGrace).Count == 0)
            {
                continue;
            }
            using var scope = await _hub.LockAsync(loaded.Tailnet, cancellationToken).ConfigureAwait(false);
            if (scope is null || scope.Bus != loaded)
            {
                continue;
            }
            var states = loaded.OnlineWithoutStream(_reconnectGrace).Select(id => loaded.LiveStateOffline(id, now)).OfType<NodeLiveState>().ToList();
            if (states.Count == 0)
            {
                continue;
            }
            await scope.CommitLiveStateAsync(states, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>True when a write with this idempotency key is in the tailnet's change log.</summary>
    private async Task<bool> AppliedBeforeAsync(TailnetWriteScope scope, string idempotencyKey, CancellationToken cancellationToken)
    {
        return await _store.FindChangeAsync(scope.Bus.Tailnet, idempotencyKey, cancellationToken).ConfigureAwait(false) is not null;
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
            await MarkAbsentNodesOfflineAsync(now, cancellationToken).ConfigureAwait(false);
            await _store.PruneChangesAsync(_changeLogRetention, ChangeLogKeep, cancellationToken).ConfigureAwait(false);
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
    /// Removes ephemeral nodes offline for longer than the timeout, in the tailnets this server
    /// serves. After a restart every node gets the full timeout to reconnect.
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
            if (_hub.Keeper.FreshEpoch(node.Tailnet) is null)
            {
                continue; // another server's tailnet: its owner removes it
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
