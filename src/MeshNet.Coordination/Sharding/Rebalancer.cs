using System.Globalization;
using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Storage;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// Moves tailnets between servers by measured load, from one server at a time (the holder of the
/// cluster role <see cref="Role"/>). Every <see cref="CoordinationOptions.RebalanceInterval"/> the
/// leader reads each live, non-draining server's per-tailnet load, plans with
/// <see cref="RebalancePlanner"/> (hysteresis, no tailnet in its cooldown, each tailnet at most once)
/// and has each source move its tailnets, with at most one move per server at a time. It does
/// nothing while paused (<see cref="Registry.ClusterOperations.RebalancerPausedSetting"/>) or while
/// a failover or quarantine incident is open.
/// </summary>
/// <remarks>One cycle at a time (the timer is re-armed after each). Thread-safe.</remarks>
internal sealed class Rebalancer : IDisposable
{
    public const string Role = "rebalancer";

    private readonly LeaseKeeper _keeper;
    private readonly ServerDirectory _directory;
    private readonly IClusterPeers _peers;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _cooldown;
    private readonly double _hysteresis;
    private readonly TimeSpan _incidentTimeout;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _cycle = new(1, 1);
    private ITimer? _timer;

    public Rebalancer(LeaseKeeper keeper, ServerDirectory directory, IClusterPeers peers, CoordinationOptions options, TimeProvider time,
        CoordinationCounters counters, ILogger<Rebalancer> logger)
    {
        _keeper = keeper;
        _directory = directory;
        _peers = peers;
        _interval = options.RebalanceInterval;
        _cooldown = options.RebalanceCooldown;
        _hysteresis = options.RebalanceHysteresis;
        _incidentTimeout = options.IncidentTimeout;
        _time = time;
        _counters = counters;
        _logger = logger;
    }

    /// <summary>Starts the cycle timer (nothing when the interval is zero: rebalancing is off).</summary>
    public void Start()
    {
        if (_interval > TimeSpan.Zero)
        {
            _timer = _time.CreateTimer(static state => ((Rebalancer)state!).OnTimer(), this, _interval, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>One cycle now (tests and the timer call it); what it did.</summary>
    public async Task<RebalanceCycle> RunCycleAsync(CancellationToken cancellationToken)
    {
        await _cycle.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await CycleAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _cycle.Release();
        }
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _cycle.Dispose();
    }

    private async Task<RebalanceCycle> CycleAsync(CancellationToken cancellationToken)
    {
        var store = _keeper.Store;
        if (!await store.TryHoldRoleAsync(Role, _keeper.Server.Id, _keeper.Server.Instance, _interval * 3 + TimeSpan.FromSeconds(1), cancellationToken)
            .ConfigureAwait(false))
        {
            return RebalanceCycle.Skipped("another server leads rebalancing");
        }
        if (await store.GetSettingAsync(Registry.ClusterOperations.RebalancerPausedSetting, cancellationToken).ConfigureAwait(false) == "true")
        {
            return RebalanceCycle.Skipped("paused by an administrator");
        }
        var incidents = await store.ListIncidentsAsync(20, cancellationToken).ConfigureAwait(false);
        // A part still open twice the incident timeout after the start was abandoned (the server
        // measuring it died; a live one closes it by the timeout): it no longer holds rebalancing.
        var abandonedBefore = _time.GetUtcNow() - _incidentTimeout * 2;
        if (incidents.Any(incident => incident.Cause is IncidentCauses.Failover or IncidentCauses.Quarantine &&
            incident.StartedAt > abandonedBefore && incident.Tailnets.Any(part => !part.Closed)))
        {
            return RebalanceCycle.Skipped("an incident is open");
        }
        await _directory.RefreshAsync(cancellationToken).ConfigureAwait(false);
        var servers = _directory.Live.Where(server => !server.Draining).ToList();
        if (servers.Count < 2)
        {
            return RebalanceCycle.Skipped("fewer than two servers");
        }
        var leases = (await store.ListLeasesAsync(cancellationToken).ConfigureAwait(false)).ToDictionary(lease => lease.Tailnet, StringComparer.Ordinal);
        var now = _time.GetUtcNow();
        var loads = await Task.WhenAll(servers.Select(server => _peers.GetLoadAsync(server.Url, cancellationToken))).ConfigureAwait(false);
        // A tailnet in its cooldown stays where it is but still weighs on its server.
        bool Movable(string server, TailnetLoad tailnet) => leases.TryGetValue(tailnet.Tailnet, out var lease) && !lease.Quarantined &&
            lease.Owner == server && (lease.MovedAt is not { } moved || now - moved >= _cooldown);
        var rounds = RebalancePlanner.Plan([.. loads.Select(load => load with
        {
            Tailnets = [.. load.Tailnets.Where(tailnet => Movable(load.Server, tailnet))],
            PinnedScore = load.Tailnets.Where(tailnet => !Movable(load.Server, tailnet)).Sum(RebalancePlanner.Score),
        })], _hysteresis);
        string measured = string.Join(", ", loads.Select(load =>
            string.Create(CultureInfo.InvariantCulture, $"{load.Server} {load.Tailnets.Sum(RebalancePlanner.Score):0.#} (cpu {load.Cpu:0.00})")));
        int planned = rounds.Sum(round => round.Count);
        if (planned == 0)
        {
            CoordinationLog.RebalanceBalanced(_logger, measured);
        }
        else
        {
            CoordinationLog.RebalancePlanned(_logger, planned, rounds.Count, measured);
        }
        var urls = servers.ToDictionary(server => server.Id, server => server.Url, StringComparer.Ordinal);
        var done = new List<RebalancePlanner.Move>();
        var failed = new List<string>();
        foreach (var round in rounds)
        {
            var results = await Task.WhenAll(round.Select(async move =>
            {
                try
                {
                    await _peers.MoveAsync(urls[move.From], move.Tailnet, move.To, cancellationToken).ConfigureAwait(false);
                    return (move, (string?)null);
                }
                catch (Exception exception) when (exception is not OutOfMemoryException && !cancellationToken.IsCancellationRequested)
                {
                    return (move, exception.Message);
                }
            })).ConfigureAwait(false);
            foreach (var (move, problem) in results)
            {
                if (problem is null)
                {
                    done.Add(move);
                    _counters.RebalanceMoved();
                    CoordinationLog.RebalanceMoved(_logger, move.Tailnet, move.From, move.To, move.Score);
                }
                else
                {
                    failed.Add($"{move.Tailnet}: {problem}");
                }
            }
        }
        return new RebalanceCycle(true, "", done, failed);
    }

    private void OnTimer() => _ = RunTimedAsync();

    private async Task RunTimedAsync()
    {
        try
        {
            await RunCycleAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException and not ObjectDisposedException)
        {
            CoordinationLog.LeaseRoundFailed(_logger, $"rebalancing: {exception.Message}");
        }
        try
        {
            _timer?.Change(_interval, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }
}

/// <summary>What one rebalancing cycle did.</summary>
/// <param name="Ran">False when it was skipped (<paramref name="Reason"/>).</param>
/// <param name="Reason">Why it was skipped.</param>
/// <param name="Moves">The moves made.</param>
/// <param name="Failures">The moves that failed, with why.</param>
internal sealed record RebalanceCycle(bool Ran, string Reason, IReadOnlyList<RebalancePlanner.Move> Moves, IReadOnlyList<string> Failures)
{
    public static RebalanceCycle Skipped(string reason) => new(false, reason, [], []);
}
