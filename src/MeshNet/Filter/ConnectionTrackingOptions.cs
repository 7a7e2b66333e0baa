namespace MeshNet.Filter;

/// <summary>Limits and timeouts of the <see cref="ConnectionTracker"/>. Immutable.</summary>
internal sealed record ConnectionTrackingOptions
{
    /// <summary>Flows tracked at most; when full, the oldest-created flow is evicted.</summary>
    public int MaxFlows { get; init; } = 65536;

    /// <summary>A TCP flow of ours that has not been answered yet (SYN sent).</summary>
    public TimeSpan TcpOpening { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>An answered TCP flow without traffic (as Linux's established timeout).</summary>
    public TimeSpan TcpIdle { get; init; } = TimeSpan.FromDays(5);

    /// <summary>A TCP flow after a RST, or after FIN in both directions.</summary>
    public TimeSpan TcpClosingLinger { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A UDP flow without traffic.</summary>
    public TimeSpan UdpIdle { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>An ICMP echo flow without traffic.</summary>
    public TimeSpan IcmpEchoIdle { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often expired flows are removed (they are ignored as soon as they expire).</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(30);
}
