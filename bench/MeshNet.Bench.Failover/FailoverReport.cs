using MeshNet.Control.V1;

namespace MeshNet.Bench.Failover;

/// <summary>What one run measured (times in milliseconds).</summary>
internal sealed class FailoverReport
{
    /// <summary>The lease TTL the servers ran with.</summary>
    public TimeSpan Ttl { get; init; }

    /// <summary>When the nodes had all joined (incidents before are the set-up's own moves).</summary>
    public DateTimeOffset JoinedAt { get; set; }

    /// <summary>Seconds until every node had joined and had its first netmap.</summary>
    public double JoinSeconds { get; set; }

    /// <summary>Per policy save: from the save to the last node of its tailnet applying it.</summary>
    public List<double> Reference { get; } = [];

    /// <summary>Per node and planned migration: the node's control gap.</summary>
    public List<double> MoveGaps { get; } = [];

    /// <summary>Per planned migration: how long the source held the tailnet's writes (freeze to handover).</summary>
    public List<double> MoveFrozen { get; } = [];

    /// <summary>Per kill: from the kill to the last affected node resumed, and each node's time.</summary>
    public List<KillResult> Kills { get; } = [];

    /// <summary>PostgreSQL's work while the deployment only keeps its leases.</summary>
    public RenewalLoad? Renewals { get; set; }

    /// <summary>Where the servers' logs were written.</summary>
    public string LogDirectory { get; set; } = "";

    /// <summary>The incident records of the run, oldest first.</summary>
    public List<Incident> Incidents { get; } = [];
}

/// <summary>One kill -9: the server, what it served, and when its nodes resumed elsewhere.</summary>
/// <remarks><paramref name="LastTryMs"/>: per node, from its last failed attempt (the answer that sent it to the new owner) to its first message there.</remarks>
internal sealed record KillResult(string Server, int Tailnets, int Nodes, double LastResumedMs, IReadOnlyList<double> NodeResumedMs, IReadOnlyList<double> LastTryMs);

/// <summary>Per second over a quiet window: lease rows renewed, server heartbeats, commits, WAL bytes.</summary>
internal sealed record RenewalLoad(double Seconds, double LeaseRowsPerSecond, double HeartbeatsPerSecond, double CommitsPerSecond, double WalBytesPerSecond);
