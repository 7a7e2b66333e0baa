namespace MeshNet.Coordination.Storage;

/// <summary>A lease granted by a claim or a handover (or, when <see cref="Quarantined"/>, refused).</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Epoch">The new epoch (the old one when quarantined).</param>
/// <param name="PreviousOwner">Who held it before (null: nobody).</param>
/// <param name="PreviousInstance">The previous owner's instance.</param>
/// <param name="PreviousRenewal">When the previous owner last renewed or was granted it, by the database's clock (null: never owned).</param>
/// <param name="GrantedAt">When it was granted, by the database's clock.</param>
/// <param name="Quarantined">True when the claim quarantined the tailnet instead (a second strike).</param>
/// <param name="Released">True when the previous owner had released it (no failure).</param>
public sealed record LeaseGrant(string Tailnet, ulong Epoch, string? PreviousOwner, string? PreviousInstance, DateTimeOffset? PreviousRenewal,
    DateTimeOffset GrantedAt, bool Quarantined = false, bool Released = false);
