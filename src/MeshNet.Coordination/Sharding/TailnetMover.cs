using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// Planned moves of tailnets between servers, both ends. As the source
/// (<see cref="MoveAsync"/>): the target warms up, the source freezes the tailnet (holds its write
/// gate, so every committed change is published and no new one starts), the target performs the
/// one compare-and-set that hands the lease over with epoch + 1, and the source ends its streams
/// with a redirect to the target spread over <see cref="CoordinationOptions.RedirectSpread"/>.
/// Writes that waited on the freeze then find the bus closed and are sent to the target (nodes
/// follow the redirect; admin writes are forwarded with their idempotency key). If the target does
/// not answer, the lease decides: still the source's, the move is abandoned and the tailnet thaws.
/// As the target (<see cref="AcceptAsync"/>): the handover, then serving, then measuring the
/// nodes' return. Drains move every tailnet away, one at a time.
/// </summary>
/// <remarks>Thread-safe; moves of different tailnets may run at once.</remarks>
internal sealed class TailnetMover
{
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan AcceptTimeout = TimeSpan.FromSeconds(5);

    private readonly TailnetHub _hub;
    private readonly LeaseKeeper _keeper;
    private readonly ServerDirectory _directory;
    private readonly IClusterPeers _peers;
    private readonly TimeSpan _redirectSpread;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly ILogger _logger;
    private readonly Random _random = new();
    private readonly Lock _randomGate = new();

    public TailnetMover(TailnetHub hub, LeaseKeeper keeper, ServerDirectory directory, IClusterPeers peers, CoordinationOptions options, TimeProvider time,
        CoordinationCounters counters, ILogger<TailnetMover> logger)
    {
        _hub = hub;
        _keeper = keeper;
        _directory = directory;
        _peers = peers;
        _redirectSpread = options.RedirectSpread;
        _time = time;
        _counters = counters;
        _logger = logger;
    }

    /// <summary>
    /// Moves <paramref name="tailnet"/>, which this server must serve, to <paramref name="targetServer"/>
    /// (null: the least loaded live server).
    /// </summary>
    /// <exception cref="CoordinationException">
    /// NotOwner (another server serves it: move it there), NotFound, InvalidRequest (no such live
    /// target), Unavailable (the target did not take it; it stays here).
    /// </exception>
    public async Task<MoveResult> MoveAsync(string tailnet, string? targetServer, string cause, string? incidentId, CancellationToken cancellationToken)
    {
        if (await _keeper.AcquireAsync(tailnet, cancellationToken).ConfigureAwait(false) is null)
        {
            throw Failures.NotFound($"tailnet '{tailnet}' does not exist");
        }
        await _directory.RefreshAsync(cancellationToken).ConfigureAwait(false);
        var target = ChooseTarget(targetServer);
        CoordinationLog.TailnetMoving(_logger, tailnet, _keeper.Server.Id, target.Id, cause);
        using (var prepare = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            prepare.CancelAfter(PrepareTimeout);
            try
            {
                await _peers.PrepareAsync(target.Url, tailnet, prepare.Token).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                CoordinationLog.TailnetMoveFailed(_logger, tailnet, target.Id, $"the target could not prepare it: {exception.Message}");
                throw;
            }
        }

        using var scope = await _hub.LockAsync(tailnet, cancellationToken).ConfigureAwait(false)
            ?? throw Failures.NotFound($"tailnet '{tailnet}' does not exist");
        long frozenAt = _time.GetTimestamp();
        var bus = scope.Bus;
        incidentId ??= $"{IncidentCauses.PlannedMove}:{tailnet}:{bus.Epoch + 1}";
        ulong epoch;
        _keeper.SetHandingOver(tailnet, bus.Epoch, true);
        try
        {
            using var accept = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            accept.CancelAfter(AcceptTimeout);
            epoch = await _peers.AcceptAsync(target.Url, new HandoverRequest(tailnet, _keeper.Server.Id, bus.Epoch, bus.Revision, cause, incidentId,
                _time.GetElapsedTime(frozenAt)), accept.Token).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // The outcome is the lease's: handed over (the answer was lost), or still ours.
            var lease = await _keeper.Store.GetLeaseAsync(tailnet, CancellationToken.None).ConfigureAwait(false);
            if (lease is null || lease.Owner != target.Id || lease.Epoch != bus.Epoch + 1)
            {
                _keeper.SetHandingOver(tailnet, bus.Epoch, false);
                CoordinationLog.TailnetMoveFailed(_logger, tailnet, target.Id, exception.Message);
                throw Failures.Unavailable($"moving tailnet '{tailnet}' to {target.Id} failed ({exception.Message}); it stays on {_keeper.Server.Id}");
            }
            epoch = lease.Epoch;
        }
        _keeper.Forget(tailnet, bus.Epoch);
        int streams = _hub.CloseSpread(tailnet, _ => Failures.NotOwner(tailnet, target.Url, epoch), _redirectSpread, Shared());
        var frozen = _time.GetElapsedTime(frozenAt);
        _counters.HandoverOut();
        CoordinationLog.TailnetMoved(_logger, tailnet, _keeper.Server.Id, target.Id, epoch, frozen.TotalMilliseconds, streams);
        return new MoveResult(tailnet, _keeper.Server.Id, target.Id, epoch, frozen, streams);
    }

    /// <summary>
    /// The target's half of a move: the compare-and-set on (source, epoch), then serving the
    /// tailnet from the prepared snapshot, and measuring its nodes' return.
    /// </summary>
    /// <returns>The new epoch.</returns>
    /// <exception cref="CoordinationException">Conflict: the lease is not the source's at that epoch (nothing changed).</exception>
    public async Task<ulong> AcceptAsync(HandoverRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_keeper.Draining)
        {
            throw Failures.Unavailable($"server {_keeper.Server.Id} is draining and takes no tailnet");
        }
        _hub.ExpectHandover(request.Tailnet, true);
        try
        {
            long sentAt = _keeper.Timestamp();
            var grant = await _keeper.Store.HandOverAsync(request.Tailnet, request.FromServer, request.Epoch, _keeper.Server.Id, _keeper.Server.Instance,
                _keeper.Settings.Ttl, cancellationToken).ConfigureAwait(false)
                ?? throw Failures.Create(CoordinationErrorCode.Conflict,
                    $"the lease of '{request.Tailnet}' is not {request.FromServer}'s at epoch {request.Epoch}; nothing was handed over");
            _keeper.AddGranted(grant, sentAt);
            _counters.HandoverIn();
            var bus = await _hub.GetAsync(request.Tailnet, cancellationToken).ConfigureAwait(false)
                ?? throw Failures.NotFound($"tailnet '{request.Tailnet}' does not exist");
            long gapStarted = _time.GetTimestamp() - (long)(request.FrozenFor.TotalSeconds * _time.TimestampFrequency);
            string subject = request.Cause == IncidentCauses.Drain ? request.FromServer : request.Tailnet;
            _hub.Recorder.Begin(new TailnetTakeover(request.Tailnet, grant.Epoch, request.Cause, request.IncidentId, subject, gapStarted,
                _time.GetUtcNow() - request.FrozenFor, TimeSpan.Zero), bus.OnlineNodes());
            return grant.Epoch;
        }
        finally
        {
            _hub.ExpectHandover(request.Tailnet, false);
        }
    }

    /// <summary>
    /// Drains this server: marks it draining (it claims nothing and nothing is moved to it), then
    /// moves each tailnet it serves to the least loaded live server, one at a time.
    /// </summary>
    public async Task<(IReadOnlyList<MoveResult> Moved, IReadOnlyList<string> Failed)> DrainAsync(CancellationToken cancellationToken)
    {
        _keeper.Draining = true;
        await _keeper.Store.SetDrainingAsync(_keeper.Server.Id, true, cancellationToken).ConfigureAwait(false);
        var incident = $"{IncidentCauses.Drain}:{_keeper.Server.Id}:{_time.GetUtcNow().ToUnixTimeMilliseconds()}";
        var moved = new List<MoveResult>();
        var failed = new List<string>();
        // The heartbeats lag behind the moves: what this drain gave each server counts as well.
        var given = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var lease in _keeper.HeldLeases())
        {
            try
            {
                await _directory.RefreshAsync(cancellationToken).ConfigureAwait(false);
                var target = ChooseTarget(null, given);
                long streams = _hub.Loaded().FirstOrDefault(bus => bus.Tailnet == lease.Tailnet)?.LiveStreamCount ?? 0;
                var result = await MoveAsync(lease.Tailnet, target.Id, IncidentCauses.Drain, incident, cancellationToken).ConfigureAwait(false);
                given[target.Id] = given.GetValueOrDefault(target.Id) + Math.Max(streams, 1);
                moved.Add(result);
            }
            catch (CoordinationException exception)
            {
                failed.Add($"{lease.Tailnet}: {exception.Message}");
            }
        }
        return (moved, failed);
    }

    /// <summary>Lets this server take tailnets again.</summary>
    public async Task UndrainAsync(CancellationToken cancellationToken)
    {
        await _keeper.Store.SetDrainingAsync(_keeper.Server.Id, false, cancellationToken).ConfigureAwait(false);
        _keeper.Draining = false;
    }

    /// <summary>
    /// The named live server, or the least loaded one (by map streams, then tailnets, as its last
    /// heartbeat reported them, plus the streams in <paramref name="given"/>) that is neither this
    /// server nor draining.
    /// </summary>
    private StoredServer ChooseTarget(string? targetServer, IReadOnlyDictionary<string, long>? given = null)
    {
        var candidates = _directory.Live.Where(server => server.Id != _keeper.Server.Id && !server.Draining).ToList();
        if (targetServer is { Length: > 0 })
        {
            return candidates.FirstOrDefault(server => server.Id == targetServer)
                ?? throw Failures.Invalid($"server '{targetServer}' is not a live, non-draining server other than {_keeper.Server.Id}");
        }
        return candidates
            .Select(server => (Server: server, Load: ServerLoad.Parse(server.Load)))
            .OrderBy(candidate => candidate.Load.Streams + (given?.GetValueOrDefault(candidate.Server.Id) ?? 0))
            .ThenBy(candidate => candidate.Load.Tailnets)
            .ThenBy(candidate => candidate.Server.Id, StringComparer.Ordinal)
            .Select(candidate => candidate.Server).FirstOrDefault()
            ?? throw Failures.Unavailable("no other live server to move to");
    }

    private Random Shared()
    {
        lock (_randomGate)
        {
            return new Random(_random.Next());
        }
    }
}
