namespace MeshNet.Coordination.Storage;

/// <summary>
/// What <see cref="ICoordinationLeaseStore.ClaimAsync"/> may take. Never a lease the claimer
/// holds (same server and instance: renewing keeps its epoch), nor a quarantined one, nor
/// anything while the claimer is draining or replaced. Otherwise a lease is claimable when the
/// claimer's server id owned it under another instance (a restarted server takes its own
/// leases back at once, expired or not), or when it has expired by the database's clock and
/// either had no owner or the database has been up for longer than <see cref="StickyPeriod"/>
/// (right after a database restart every lease looks expired; the previous owners get that long
/// to renew first).
/// </summary>
/// <remarks>
/// Quarantine: a lease whose previous owner never renewed it after claiming it (it died while
/// taking the tailnet on) counts a strike. A second strike within <see cref="QuarantineWindow"/>
/// quarantines the tailnet instead of granting it: nobody serves it until
/// <see cref="ICoordinationLeaseStore.ReleaseQuarantineAsync"/>.
/// </remarks>
/// <param name="ServerId">The claimer.</param>
/// <param name="Instance">The claimer's process instance.</param>
/// <param name="Ttl">The lease duration.</param>
/// <param name="Limit">At most this many grants.</param>
/// <param name="StickyPeriod">How long after a database start only previous owners may claim.</param>
/// <param name="QuarantineWindow">Two strikes within this window quarantine a tailnet (zero: never).</param>
/// <param name="Tailnet">Only this tailnet (an on-demand claim), or null for any.</param>
public sealed record LeaseClaim(string ServerId, string Instance, TimeSpan Ttl, int Limit, TimeSpan StickyPeriod, TimeSpan QuarantineWindow,
    string? Tailnet = null);
