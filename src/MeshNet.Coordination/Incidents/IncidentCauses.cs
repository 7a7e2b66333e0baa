namespace MeshNet.Coordination.Incidents;

/// <summary>Why a tailnet changed owner (<see cref="Storage.StoredIncident.Cause"/>).</summary>
internal static class IncidentCauses
{
    /// <summary>An administrator moved it (<c>MoveTailnet</c>), or the rebalancer did.</summary>
    public const string PlannedMove = "planned-move";

    /// <summary>Its server was drained (<c>DrainServer</c>).</summary>
    public const string Drain = "drain";

    /// <summary>Its owner stopped renewing (died, paused, or cut off from the database) and a standby took it over.</summary>
    public const string Failover = "failover";

    /// <summary>Its owner stopped cleanly and gave it up.</summary>
    public const string Release = "release";

    /// <summary>It brought down two owners and nobody serves it until an administrator releases it.</summary>
    public const string Quarantine = "quarantine";
}
