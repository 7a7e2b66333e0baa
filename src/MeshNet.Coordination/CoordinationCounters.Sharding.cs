namespace MeshNet.Coordination;

public sealed partial class CoordinationCounters
{
    private long _leaseRenewals;
    private long _leaseRenewalFailures;
    private long _leasesClaimed;
    private long _leasesLost;
    private long _tailnetsQuarantined;
    private long _fencedWrites;
    private long _redirects;
    private long _catchUps;
    private long _handoversIn;
    private long _handoversOut;
    private long _liveStateBatches;
    private long _liveStateWrites;
    private long _rateLimited;
    private long _rebalanceMoves;

    /// <summary>Successful lease renewals (one statement renews every lease this server holds).</summary>
    public long LeaseRenewals => Volatile.Read(ref _leaseRenewals);

    /// <summary>Lease renewals that failed or timed out.</summary>
    public long LeaseRenewalFailures => Volatile.Read(ref _leaseRenewalFailures);

    /// <summary>Leases this server claimed (expired, free, or its own from a previous run).</summary>
    public long LeasesClaimed => Volatile.Read(ref _leasesClaimed);

    /// <summary>Leases this server stopped serving without giving them up: taken over, lapsed, or the server replaced.</summary>
    public long LeasesLost => Volatile.Read(ref _leasesLost);

    /// <summary>Tailnets this server's claims quarantined.</summary>
    public long TailnetsQuarantined => Volatile.Read(ref _tailnetsQuarantined);

    /// <summary>Writes the store refused because their lease epoch was superseded or expired (never published).</summary>
    public long FencedWritesRefused => Volatile.Read(ref _fencedWrites);

    /// <summary>Node calls answered with a redirect to the tailnet's owner.</summary>
    public long Redirects => Volatile.Read(ref _redirects);

    /// <summary>Map streams resumed from the change log (a session this server did not hold, or whose replay buffer did not reach back).</summary>
    public long CatchUpsSent => Volatile.Read(ref _catchUps);

    /// <summary>Tailnets handed over to this server by a planned move.</summary>
    public long HandoversIn => Volatile.Read(ref _handoversIn);

    /// <summary>Tailnets this server handed over by a planned move or a drain.</summary>
    public long HandoversOut => Volatile.Read(ref _handoversOut);

    /// <summary>Batches of live state (online, endpoints) written.</summary>
    public long LiveStateBatches => Volatile.Read(ref _liveStateBatches);

    /// <summary>Node live-state records written (in <see cref="LiveStateBatches"/>).</summary>
    public long LiveStateWrites => Volatile.Read(ref _liveStateWrites);

    /// <summary>Tailnets this server's rebalancer moved (as the leader).</summary>
    public long RebalanceMoves => Volatile.Read(ref _rebalanceMoves);

    /// <summary>Calls refused because their tailnet exceeded a limit.</summary>
    public long RateLimited => Volatile.Read(ref _rateLimited);

    private string ShardingSummary() =>
        $"renewals={LeaseRenewals}/{LeaseRenewalFailures}failed claimed={LeasesClaimed} lost={LeasesLost} quarantined={TailnetsQuarantined} " +
        $"fenced={FencedWritesRefused} redirects={Redirects} catchUps={CatchUpsSent} handovers={HandoversIn}in/{HandoversOut}out " +
        $"live={LiveStateWrites}/{LiveStateBatches}batches rateLimited={RateLimited}";

    internal void LeaseRenewed() => Interlocked.Increment(ref _leaseRenewals);

    internal void LeaseRenewalFailed() => Interlocked.Increment(ref _leaseRenewalFailures);

    internal void LeaseClaimed() => Interlocked.Increment(ref _leasesClaimed);

    internal void LeaseLost() => Interlocked.Increment(ref _leasesLost);

    internal void TailnetQuarantined() => Interlocked.Increment(ref _tailnetsQuarantined);

    internal void FencedWriteRefused() => Interlocked.Increment(ref _fencedWrites);

    internal void Redirected() => Interlocked.Increment(ref _redirects);

    internal void CatchUpSent() => Interlocked.Increment(ref _catchUps);

    internal void HandoverIn() => Interlocked.Increment(ref _handoversIn);

    internal void HandoverOut() => Interlocked.Increment(ref _handoversOut);

    internal void LiveStateWritten(int records)
    {
        Interlocked.Increment(ref _liveStateBatches);
        Interlocked.Add(ref _liveStateWrites, records);
    }

    internal void RateLimitHit() => Interlocked.Increment(ref _rateLimited);

    internal void RebalanceMoved() => Interlocked.Increment(ref _rebalanceMoves);
}
