using MeshNet.Coordination.Storage;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Incidents;

/// <summary>
/// Measures every tailnet this server takes on from another owner (a planned move, a drain, a
/// failover, a release) and records it as one tailnet's part of an incident: time to detect,
/// which nodes were connected to the old owner (affected), when each of them resumed here (its
/// control gap), time until all had, node-seconds of gap, writes refused meanwhile, and the
/// severity. A part closes when every affected node resumed or after
/// <see cref="CoordinationOptions.IncidentTimeout"/> (nodes that never came back count until then).
/// Quarantines are recorded as they happen. Parts are written to the store (open, then closed),
/// where every server's parts of one incident meet; metrics and a log line go out on closing.
/// </summary>
/// <remarks>Thread-safe: the measurements are guarded by <c>_gate</c>; store writes run outside it.</remarks>
internal sealed class IncidentRecorder : IDisposable
{
    /// <summary>A gap longer than this makes a tailnet unable to change: severity S1.</summary>
    public static readonly TimeSpan Slo = TimeSpan.FromSeconds(1);

    /// <summary>A gap longer than this (but within the SLO) is a degradation: S2; shorter ones are invisible: S3.</summary>
    public static readonly TimeSpan Target = TimeSpan.FromMilliseconds(250);

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Measurement> _open = new(StringComparer.Ordinal);
    private readonly ICoordinationLeaseStore _leases;
    private readonly ICoordinationStore _store;
    private readonly CoordinationMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly string _server;
    private readonly ILogger _logger;

    public IncidentRecorder(ICoordinationLeaseStore leases, ICoordinationStore store, CoordinationMetrics metrics, TimeProvider time, TimeSpan timeout,
        string server, ILogger<IncidentRecorder> logger)
    {
        _leases = leases;
        _store = store;
        _metrics = metrics;
        _time = time;
        _timeout = timeout;
        _server = server;
        _logger = logger;
    }

    /// <summary>Parts still being measured.</summary>
    public int OpenCount
    {
        get
        {
            lock (_gate)
            {
                return _open.Count;
            }
        }
    }

    /// <summary>
    /// Starts measuring a takeover: <paramref name="affected"/> are the nodes the old owner had
    /// connected (online in the store when this server loaded the tailnet).
    /// </summary>
    public void Begin(TailnetTakeover takeover, IReadOnlyCollection<ulong> affected)
    {
        ArgumentNullException.ThrowIfNull(takeover);
        var measurement = new Measurement(takeover, [.. affected]);
        Measurement? replaced;
        lock (_gate)
        {
            _open.Remove(takeover.Tailnet, out replaced);
            _open[takeover.Tailnet] = measurement;
        }
        if (replaced is not null)
        {
            _ = FinishAsync(replaced);
        }
        _metrics.IncidentOpened(takeover.Cause);
        _metrics.TimeToDetect(takeover.Cause, takeover.TimeToDetect);
        measurement.Timer = _time.CreateTimer(static state =>
        {
            var (recorder, item) = ((IncidentRecorder, Measurement))state!;
            _ = recorder.CloseAsync(item);
        }, (this, measurement), _timeout, Timeout.InfiniteTimeSpan);
        // The part is saved closed only after the incident row and its open part are written (a
        // part closing at once would otherwise race the incident's insert).
        measurement.Opened = OpenAsync(measurement);
        if (affected.Count == 0)
        {
            _ = CloseAsync(measurement);
        }
    }

    /// <summary>A node's map stream started here: if it was affected by an open takeover, it has resumed.</summary>
    public void OnAttached(string tailnet, ulong nodeId)
    {
        Measurement? done = null;
        lock (_gate)
        {
            if (!_open.TryGetValue(tailnet, out var measurement) || !measurement.Affected.Contains(nodeId) || measurement.Gaps.ContainsKey(nodeId))
            {
                return;
            }
            measurement.Gaps[nodeId] = _time.GetElapsedTime(measurement.Takeover.GapStarted);
            if (measurement.Gaps.Count == measurement.Affected.Count)
            {
                done = measurement;
            }
        }
        if (done is not null)
        {
            _ = CloseAsync(done);
        }
    }

    /// <summary>A write of the tailnet was refused while it had no owner (counted in the open part).</summary>
    public void OnRefusedWrite(string tailnet)
    {
        lock (_gate)
        {
            if (_open.TryGetValue(tailnet, out var measurement))
            {
                measurement.RefusedWrites++;
            }
        }
    }

    /// <summary>A claim quarantined a tailnet: recorded at once (nobody serves it; every node that had a stream is cut off).</summary>
    public async Task QuarantinedAsync(LeaseGrant grant, CancellationToken cancellationToken)
    {
        var nodes = await _store.ListNodesAsync(grant.Tailnet, cancellationToken).ConfigureAwait(false);
        int affected = nodes.Count(node => node.Online);
        var id = $"{IncidentCauses.Quarantine}:{grant.Tailnet}:{grant.Epoch}";
        await OpenIncidentAsync(id, IncidentCauses.Quarantine, grant.Tailnet, _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        await _leases.SaveIncidentTailnetAsync(new StoredIncidentTailnet(id, grant.Tailnet, _server, grant.Epoch,
            grant.PreviousRenewal is { } renewal ? grant.GrantedAt - renewal : TimeSpan.Zero, affected, 0, 0, TimeSpan.Zero, TimeSpan.Zero, null, 0,
            "S1", Closed: true), cancellationToken).ConfigureAwait(false);
        _metrics.IncidentOpened(IncidentCauses.Quarantine);
        CoordinationLog.IncidentQuarantine(_logger, grant.Tailnet, affected);
    }

    public void Dispose()
    {
        List<Measurement> open;
        lock (_gate)
        {
            open = [.. _open.Values];
            _open.Clear();
        }
        foreach (var measurement in open)
        {
            measurement.Timer?.Dispose();
        }
    }

    private async Task OpenAsync(Measurement measurement)
    {
        try
        {
            var takeover = measurement.Takeover;
            await OpenIncidentAsync(takeover.IncidentId, takeover.Cause, takeover.Subject, takeover.StartedAt, CancellationToken.None).ConfigureAwait(false);
            StoredIncidentTailnet part;
            lock (_gate)
            {
                if (measurement.Closed)
                {
                    return;
                }
                part = measurement.ToPart(_server, _time, closed: false);
            }
            await _leases.SaveIncidentTailnetAsync(part, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.IncidentWriteFailed(_logger, measurement.Takeover.IncidentId, exception.Message);
        }
    }

    private async Task OpenIncidentAsync(string id, string cause, string subject, DateTimeOffset startedAt, CancellationToken cancellationToken)
    {
        long tailnets = (await _store.ListTailnetsAsync(cancellationToken).ConfigureAwait(false)).Count;
        long nodes = await _store.CountNodesAsync(cancellationToken).ConfigureAwait(false);
        await _leases.OpenIncidentAsync(new StoredIncident(id, cause, subject, startedAt, tailnets, nodes), cancellationToken).ConfigureAwait(false);
    }

    private async Task CloseAsync(Measurement measurement)
    {
        lock (_gate)
        {
            if (measurement.Closed)
            {
                return;
            }
            measurement.Closed = true;
            if (_open.TryGetValue(measurement.Takeover.Tailnet, out var current) && current == measurement)
            {
                _open.Remove(measurement.Takeover.Tailnet);
            }
        }
        await FinishAsync(measurement).ConfigureAwait(false);
    }

    private async Task FinishAsync(Measurement measurement)
    {
        measurement.Timer?.Dispose();
        StoredIncidentTailnet part;
        lock (_gate)
        {
            measurement.Closed = true;
            part = measurement.ToPart(_server, _time, closed: true);
        }
        var cause = measurement.Takeover.Cause;
        foreach (var gap in measurement.AllGaps(_time))
        {
            _metrics.ControlGap(cause, gap);
        }
        if (part.TimeToMitigate is { } mitigate)
        {
            _metrics.TimeToMitigate(cause, mitigate);
        }
        if (measurement.Opened is { } opened)
        {
            await opened.ConfigureAwait(false); // never throws: failures are logged
        }
        CoordinationLog.IncidentPartClosed(_logger, part.IncidentId, part.Tailnet, part.NodesResumed, part.NodesAffected, part.MedianGap.TotalMilliseconds,
            part.MaxGap.TotalMilliseconds, part.GapNodeSeconds, part.Severity);
        try
        {
            await _leases.SaveIncidentTailnetAsync(part, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.IncidentWriteFailed(_logger, part.IncidentId, exception.Message);
        }
    }

    /// <summary>One tailnet's takeover being measured; guarded by the recorder's lock.</summary>
    private sealed class Measurement(TailnetTakeover takeover, HashSet<ulong> affected)
    {
        public TailnetTakeover Takeover { get; } = takeover;

        public HashSet<ulong> Affected { get; } = affected;

        /// <summary>Each resumed node's gap.</summary>
        public Dictionary<ulong, TimeSpan> Gaps { get; } = [];

        public int RefusedWrites { get; set; }

        public bool Closed { get; set; }

        /// <summary>The write of the incident and the open part (set once, by <see cref="Begin"/>).</summary>
        public Task? Opened { get; set; }

        public ITimer? Timer { get; set; }

        /// <summary>The gaps of the resumed nodes and, for the others, the time so far.</summary>
        public List<TimeSpan> AllGaps(TimeProvider time)
        {
            var open = time.GetElapsedTime(Takeover.GapStarted);
            return [.. Affected.Select(node => Gaps.TryGetValue(node, out var gap) ? gap : open)];
        }

        public StoredIncidentTailnet ToPart(string server, TimeProvider time, bool closed)
        {
            var gaps = AllGaps(time);
            gaps.Sort();
            var median = gaps.Count == 0 ? TimeSpan.Zero : gaps[(gaps.Count - 1) / 2];
            var max = gaps.Count == 0 ? TimeSpan.Zero : gaps[^1];
            bool allResumed = Gaps.Count == Affected.Count;
            TimeSpan? mitigate = allResumed ? Takeover.TimeToDetect > max ? Takeover.TimeToDetect : max : null;
            // S1: the tailnet could not change for longer than the SLO (nobody served it, or a node stayed cut off).
            string severity = !allResumed || max > Slo || Takeover.TimeToDetect > Slo ? "S1" : max > Target || Takeover.TimeToDetect > Target ? "S2" : "S3";
            return new StoredIncidentTailnet(Takeover.IncidentId, Takeover.Tailnet, server, Takeover.Epoch, Takeover.TimeToDetect, Affected.Count,
                Gaps.Count, gaps.Sum(gap => gap.TotalSeconds), median, max, mitigate, RefusedWrites, closed ? severity : "open", closed);
        }
    }
}
