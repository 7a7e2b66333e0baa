namespace MeshNet.Coordination.Sharding;

/// <summary>Why this server stopped serving a tailnet.</summary>
internal enum LeaseLoss
{
    /// <summary>Another server holds a later epoch (a takeover, or a handover completed).</summary>
    Taken,

    /// <summary>The lease could not be renewed in time (the database is unreachable or slow): self-fenced.</summary>
    Lapsed,

    /// <summary>This server handed it over (planned move, drain) or released it (stopping).</summary>
    Released,

    /// <summary>A newer process took this server id over.</summary>
    Replaced,
}
