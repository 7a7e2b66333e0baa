namespace MeshNet.Coordination.Storage;

/// <summary>
/// An incident: an ownership change or a control gap, with the tailnets it touched (each
/// recorded by the server that took that tailnet on).
/// </summary>
/// <param name="Id">Derived from its cause, so that every server handling a part of it names it alike (e.g. <c>failover:s1:&lt;instance&gt;</c>).</param>
/// <param name="Cause">planned-move, failover, drain, quarantine, lease-lost.</param>
/// <param name="Subject">The server or tailnet it is about.</param>
/// <param name="StartedAt">When it began (the fault, or the move's start), by the database's clock where known.</param>
/// <param name="TailnetsTotal">How many tailnets there were when it was opened.</param>
/// <param name="NodesTotal">How many nodes there were when it was opened.</param>
public sealed record StoredIncident(string Id, string Cause, string Subject, DateTimeOffset StartedAt, long TailnetsTotal, long NodesTotal)
{
    /// <summary>The tailnets it touched (filled in by <see cref="ICoordinationLeaseStore.ListIncidentsAsync"/>).</summary>
    public IReadOnlyList<StoredIncidentTailnet> Tailnets { get; init; } = [];
}
