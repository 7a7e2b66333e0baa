namespace MeshNet.Coordination.Sharding;

/// <summary>The lease knobs, from <see cref="CoordinationOptions"/>.</summary>
/// <param name="Ttl">How long a grant or renewal lasts by the database's clock.</param>
/// <param name="RenewInterval">How often the holder renews (one statement for all its leases).</param>
/// <param name="Margin">The holder stops serving this long before the database could consider the lease expired.</param>
/// <param name="ClaimInterval">How often a server looks for expired leases to take over.</param>
/// <param name="ClaimLimit">At most this many leases per claim round.</param>
/// <param name="QuarantineWindow">Two owner deaths within this window quarantine a tailnet (zero: never).</param>
internal sealed record LeaseSettings(TimeSpan Ttl, TimeSpan RenewInterval, TimeSpan Margin, TimeSpan ClaimInterval, int ClaimLimit,
    TimeSpan QuarantineWindow)
{
    /// <summary>How long a renewal may take before it counts as failed.</summary>
    public TimeSpan RenewTimeout => TimeSpan.FromTicks(Math.Max(RenewInterval.Ticks, (Ttl - Margin).Ticks / 2));

    /// <summary>Right after a database start, how long only the previous owners may claim their leases.</summary>
    public TimeSpan StickyPeriod => Ttl;
}
