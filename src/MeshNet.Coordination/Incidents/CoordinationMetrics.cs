using System.Diagnostics.Metrics;

namespace MeshNet.Coordination.Incidents;

/// <summary>
/// The coordination service's <see cref="System.Diagnostics.Metrics"/> instruments, on the meter
/// <see cref="MeterName"/> (one per service instance, from the host's <see cref="IMeterFactory"/>
/// when there is one): incidents by cause, their time to detect and to mitigate, each node's
/// control gap and the node-seconds of gap, and observable counters over
/// <see cref="CoordinationCounters"/> (lease renewals and failures, fenced writes, redirects,
/// streams, tailnets served). Thread-safe.
/// </summary>
internal sealed class CoordinationMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "MeshNet.Coordination";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _incidents;
    private readonly Histogram<double> _timeToDetect;
    private readonly Histogram<double> _timeToMitigate;
    private readonly Histogram<double> _controlGap;
    private readonly Counter<double> _gapNodeSeconds;

    public CoordinationMetrics(IMeterFactory? factory, CoordinationCounters counters, Func<int> tailnetsServed)
    {
        if (factory is not null)
        {
            _meter = factory.Create(MeterName);
        }
        else
        {
            _meter = new Meter(MeterName);
            _ownsMeter = true;
        }
        _incidents = _meter.CreateCounter<long>("meshnet.coordination.incidents", "{incident}",
            "Ownership changes and control gaps, by cause (planned-move, drain, failover, release, quarantine).");
        _timeToDetect = _meter.CreateHistogram<double>("meshnet.coordination.incident.time_to_detect", "s",
            "From a fault (the old owner's last renewal, or the start of a move) to the new owner taking the tailnet on.");
        _timeToMitigate = _meter.CreateHistogram<double>("meshnet.coordination.incident.time_to_mitigate", "s",
            "From a fault until every affected node resumed on the new owner.");
        _controlGap = _meter.CreateHistogram<double>("meshnet.coordination.control_gap", "s",
            "Each affected node's time without a working control connection during an ownership change.");
        _gapNodeSeconds = _meter.CreateCounter<double>("meshnet.coordination.control_gap.node_seconds", "s",
            "The sum over affected nodes of their control gap: the impact of ownership changes.");
        _meter.CreateObservableCounter("meshnet.coordination.lease.renewals", () => counters.LeaseRenewals, "{renewal}",
            "Lease renewals (one statement renews every lease of the server).");
        _meter.CreateObservableCounter("meshnet.coordination.lease.renewal_failures", () => counters.LeaseRenewalFailures, "{renewal}");
        _meter.CreateObservableCounter("meshnet.coordination.lease.claims", () => counters.LeasesClaimed, "{lease}");
        _meter.CreateObservableCounter("meshnet.coordination.lease.losses", () => counters.LeasesLost, "{lease}");
        _meter.CreateObservableCounter("meshnet.coordination.writes.fenced", () => counters.FencedWritesRefused, "{write}",
            "Writes refused by their lease epoch (a stale owner's); never published.");
        _meter.CreateObservableCounter("meshnet.coordination.redirects", () => counters.Redirects, "{call}");
        _meter.CreateObservableCounter("meshnet.coordination.rate_limited", () => counters.RateLimited, "{call}");
        _meter.CreateObservableUpDownCounter("meshnet.coordination.streams", () => counters.MapStreamsActive, "{stream}");
        _meter.CreateObservableUpDownCounter("meshnet.coordination.tailnets", tailnetsServed, "{tailnet}", "Tailnets this server serves.");
    }

    public void IncidentOpened(string cause) => _incidents.Add(1, new KeyValuePair<string, object?>("cause", cause));

    public void TimeToDetect(string cause, TimeSpan value) => _timeToDetect.Record(value.TotalSeconds, new KeyValuePair<string, object?>("cause", cause));

    public void TimeToMitigate(string cause, TimeSpan value) => _timeToMitigate.Record(value.TotalSeconds, new KeyValuePair<string, object?>("cause", cause));

    public void ControlGap(string cause, TimeSpan gap)
    {
        var tag = new KeyValuePair<string, object?>("cause", cause);
        _controlGap.Record(gap.TotalSeconds, tag);
        _gapNodeSeconds.Add(gap.TotalSeconds, tag);
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
