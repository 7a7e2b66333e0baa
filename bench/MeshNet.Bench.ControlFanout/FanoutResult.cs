namespace MeshNet.Bench.ControlFanout;

/// <summary>One measured wave: the time to the last node (NaN when some never arrived), every node's latency, bytes per delta.</summary>
internal sealed record WaveOutcome(double LastMs, double[] NodeMs, double BytesPerDelta, int Arrived, int Expected)
{
    public bool Complete => Arrived >= Expected && !double.IsNaN(LastMs);
}

/// <summary>What one node count measured.</summary>
internal sealed class FanoutResult
{
    public int Nodes { get; init; }

    public double RegistrationsPerSecond { get; set; }

    public double ConnectSeconds { get; set; }

    public int ClientPeers { get; set; }

    public int ServerPeers { get; set; }

    public double ManagedBytesPerNode { get; set; }

    public double WorkingSetBytesPerNode { get; set; }

    public uint NodesAffected { get; set; }

    public int Reconnects { get; set; }

    public List<WaveOutcome> Reference { get; } = [];

    public List<WaveOutcome> Policy { get; } = [];

    public List<double> SaveRpcMs { get; } = [];

    /// <summary>Last-node times (incomplete waves count as infinite, so a missed node is never hidden).</summary>
    public static IEnumerable<double> LastTimes(IEnumerable<WaveOutcome> waves) =>
        waves.Select(w => w.Complete ? w.LastMs : double.PositiveInfinity);
}
