namespace MeshNet.Coordination.Storage;

/// <summary>One tailnet's part of an incident, as measured by the server that took the tailnet on.</summary>
/// <param name="IncidentId">The incident.</param>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Server">The server that measured it (the new owner).</param>
/// <param name="Epoch">The epoch it was served under afterwards.</param>
/// <param name="TimeToDetect">From the fault (the old owner's last renewal, or the move's start) to the new owner's grant.</param>
/// <param name="NodesAffected">Nodes that were connected when it began.</param>
/// <param name="NodesResumed">Of those, the nodes that connected to the new owner.</param>
/// <param name="GapNodeSeconds">The sum over affected nodes of their control gap (a node that never came back counts until the part closed).</param>
/// <param name="MedianGap">The median control gap of the affected nodes.</param>
/// <param name="MaxGap">The largest control gap.</param>
/// <param name="TimeToMitigate">From the fault until every affected node resumed (null: not all did).</param>
/// <param name="RefusedWrites">Writes refused meanwhile (fenced, or no owner).</param>
/// <param name="Severity">S0 data plane broken, S1 tailnet could not change beyond the SLO, S2 degraded, S3 invisible.</param>
/// <param name="Closed">True once every affected node resumed or the measurement timed out.</param>
public sealed record StoredIncidentTailnet(string IncidentId, string Tailnet, string Server, ulong Epoch, TimeSpan TimeToDetect, int NodesAffected,
    int NodesResumed, double GapNodeSeconds, TimeSpan MedianGap, TimeSpan MaxGap, TimeSpan? TimeToMitigate, int RefusedWrites, string Severity,
    bool Closed);
