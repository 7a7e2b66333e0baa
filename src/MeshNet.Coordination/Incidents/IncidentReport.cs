using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Incidents;

/// <summary>An incident with its tailnets' parts summed up: blast radius, node-seconds, the worst severity. Pure.</summary>
internal static class IncidentReport
{
    public static Incident ToProto(StoredIncident stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var incident = new Incident
        {
            Id = stored.Id,
            Cause = stored.Cause,
            Subject = stored.Subject,
            Started = Timestamp.FromDateTimeOffset(stored.StartedAt),
            TailnetsAffected = (uint)stored.Tailnets.Count,
            TailnetsTotal = (ulong)stored.TailnetsTotal,
            NodesAffected = (uint)stored.Tailnets.Sum(part => part.NodesAffected),
            NodesTotal = (ulong)stored.NodesTotal,
            GapNodeSeconds = stored.Tailnets.Sum(part => part.GapNodeSeconds),
            MaxTimeToDetect = Duration.FromTimeSpan(stored.Tailnets.Count == 0 ? TimeSpan.Zero : stored.Tailnets.Max(part => part.TimeToDetect)),
            Severity = Worst(stored.Tailnets.Select(part => part.Severity)),
        };
        if (stored.Tailnets.Count > 0 && stored.Tailnets.All(part => part.TimeToMitigate is not null))
        {
            incident.TimeToMitigate = Duration.FromTimeSpan(stored.Tailnets.Max(part => part.TimeToMitigate!.Value));
        }
        foreach (var part in stored.Tailnets)
        {
            var item = new IncidentTailnet
            {
                Tailnet = part.Tailnet,
                Server = part.Server,
                Epoch = part.Epoch,
                TimeToDetect = Duration.FromTimeSpan(part.TimeToDetect),
                NodesAffected = (uint)part.NodesAffected,
                NodesResumed = (uint)part.NodesResumed,
                GapNodeSeconds = part.GapNodeSeconds,
                MedianGap = Duration.FromTimeSpan(part.MedianGap),
                MaxGap = Duration.FromTimeSpan(part.MaxGap),
                RefusedWrites = (uint)part.RefusedWrites,
                Severity = part.Severity,
                Closed = part.Closed,
            };
            if (part.TimeToMitigate is { } mitigate)
            {
                item.TimeToMitigate = Duration.FromTimeSpan(mitigate);
            }
            incident.Tailnets.Add(item);
        }
        return incident;
    }

    /// <summary>The worst of the severities (S0 worst; an open part counts as "open" until it closes).</summary>
    public static string Worst(IEnumerable<string> severities)
    {
        var list = severities.ToList();
        if (list.Count == 0)
        {
            return "S3";
        }
        if (list.Contains("open"))
        {
            return "open";
        }
        return list.Min(StringComparer.Ordinal)!;
    }

    /// <summary>One line for a log or a console: cause, subject, blast radius, gap, time to detect and mitigate, severity.</summary>
    public static string Summary(Incident incident)
    {
        ArgumentNullException.ThrowIfNull(incident);
        string mitigate = incident.TimeToMitigate is { } value ? $"{value.ToTimeSpan().TotalSeconds:0.000} s" : "not yet";
        return string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{incident.Id}: {incident.Cause} of {incident.Subject} at {incident.Started.ToDateTimeOffset():u}; tailnets {incident.TailnetsAffected}/{incident.TailnetsTotal}, " +
            $"nodes {incident.NodesAffected}/{incident.NodesTotal}; detect {incident.MaxTimeToDetect.ToTimeSpan().TotalSeconds:0.000} s, mitigate {mitigate}; " +
            $"gap {incident.GapNodeSeconds:0.0} node-s; severity {incident.Severity}");
    }
}
