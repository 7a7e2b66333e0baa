namespace MeshNet.Coordination.Storage;

/// <summary>A lease a claim may take, as read inside the claim's transaction (times in unix milliseconds).</summary>
internal sealed record LeaseCandidate(string Tailnet, string? Owner, string? OwnerInstance, ulong Epoch, long? RenewedAt, bool RenewedSinceGrant,
    long? StrikeAt)
{
    /// <summary>The grant (or quarantine) this candidate turns into.</summary>
    public LeaseGrant Grant(ulong epoch, long now, bool quarantined) =>
        new(Tailnet, epoch, Owner, OwnerInstance, RenewedAt is { } renewed ? DateTimeOffset.FromUnixTimeMilliseconds(renewed) : null,
            DateTimeOffset.FromUnixTimeMilliseconds(now), quarantined, Released: Owner is null && Epoch > 0);
}

/// <summary>What a claim does with one candidate lease.</summary>
/// <param name="Quarantine">Quarantine instead of granting.</param>
/// <param name="StrikeAt">The strike time to store (unix ms), or null for none.</param>
/// <param name="Reason">Why it was quarantined.</param>
internal readonly record struct LeaseDecision(bool Quarantine, long? StrikeAt, string Reason);

/// <summary>
/// The quarantine rule, shared by every store: an owner that never renewed a lease after it was
/// granted died taking the tailnet on, which is a strike against the tailnet; a second strike
/// within the window quarantines it. Pure.
/// </summary>
internal static class LeaseRules
{
    public static LeaseDecision Decide(LeaseCandidate candidate, long now, TimeSpan quarantineWindow)
    {
        bool strike = candidate.Owner is not null && !candidate.RenewedSinceGrant;
        if (!strike)
        {
            return new LeaseDecision(false, candidate.StrikeAt, "");
        }
        long window = (long)quarantineWindow.TotalMilliseconds;
        if (window > 0 && candidate.StrikeAt is { } earlier && now - earlier <= window)
        {
            return new LeaseDecision(true, now,
                $"two owners ({candidate.Owner} the second) stopped before renewing it once, within {quarantineWindow.TotalMinutes:0.#} minutes");
        }
        return new LeaseDecision(false, now, "");
    }
}
