using System.Diagnostics;
using MeshNet.Coordination.Bus;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// Measures this server's load for the rebalancer: per tailnet, the changes per second its nodes
/// and administrators make (those charged to its budget, an EWMA with the configured time
/// constant) weighted by the tailnet's nodes (the work each change fans out to), and its live
/// streams; for the server, their sums and the CPU the process uses. The service's own writes
/// (streams attaching after a move, nodes going offline) are not the tailnet's load and are not
/// counted. <see cref="Sample"/> advances the averages (each heartbeat calls it).
/// </summary>
/// <remarks>Thread-safe: counts are added with interlocked operations; <c>_gate</c> guards the averages.</remarks>
internal sealed class LoadMeter
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TailnetRate> _rates = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private long _sampledAt;
    private TimeSpan _cpuAt;
    private double _cpu;

    /// <summary>A meter on <paramref name="time"/>, averaging rates over <paramref name="timeConstant"/> (default: 30 s).</summary>
    public LoadMeter(TimeProvider time, TimeSpan timeConstant = default)
    {
        _time = time;
        TimeConstant = timeConstant > TimeSpan.Zero ? timeConstant : TimeSpan.FromSeconds(30);
        _sampledAt = time.GetTimestamp();
        _cpuAt = ProcessCpu();
    }

    /// <summary>The process's CPU use at the last sample, a fraction of one core.</summary>
    public double Cpu
    {
        get
        {
            lock (_gate)
            {
                return _cpu;
            }
        }
    }

    /// <summary>The time constant of the change-rate averages.</summary>
    public TimeSpan TimeConstant { get; }

    /// <summary>A node or an administrator of <paramref name="tailnet"/> made a change (it was charged to the budget).</summary>
    public void Changed(string tailnet)
    {
        TailnetRate rate;
        lock (_gate)
        {
            if (!_rates.TryGetValue(tailnet, out rate!))
            {
                rate = new TailnetRate();
                _rates[tailnet] = rate;
            }
        }
        Interlocked.Increment(ref rate.Pending);
    }

    /// <summary>Folds the changes since the last sample into the averages and measures CPU; returns the server's load.</summary>
    public ServerLoad Sample(IReadOnlyList<TailnetBus> buses, int tailnetsServed, long streams)
    {
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            double seconds = Math.Max(_time.GetElapsedTime(_sampledAt, now).TotalSeconds, 1e-3);
            _sampledAt = now;
            double alpha = 1 - Math.Exp(-seconds / TimeConstant.TotalSeconds);
            foreach (var rate in _rates.Values)
            {
                double instant = Interlocked.Exchange(ref rate.Pending, 0) / seconds;
                rate.PerSecond += alpha * (instant - rate.PerSecond);
            }
            var cpu = ProcessCpu();
            _cpu = (cpu - _cpuAt).TotalSeconds / seconds;
            _cpuAt = cpu;
            double weighted = buses.Sum(bus => RateOf(bus.Tailnet) * bus.NodeCount);
            return new ServerLoad(tailnetsServed, streams, weighted, _cpu);
        }
    }

    /// <summary>Each loaded tailnet's load: streams, nodes, changes per second × nodes.</summary>
    public IReadOnlyList<TailnetLoad> Tailnets(IReadOnlyList<TailnetBus> buses)
    {
        lock (_gate)
        {
            return [.. buses.Select(bus => new TailnetLoad(bus.Tailnet, bus.LiveStreamCount, bus.NodeCount, RateOf(bus.Tailnet) * bus.NodeCount))];
        }
    }

    /// <summary>Forgets a tailnet this server no longer serves.</summary>
    public void Forget(string tailnet)
    {
        lock (_gate)
        {
            _rates.Remove(tailnet);
        }
    }

    /// <summary>The average changes per second of <paramref name="tailnet"/> at the last sample.</summary>
    public double ChangesPerSecond(string tailnet)
    {
        lock (_gate)
        {
            return RateOf(tailnet);
        }
    }

    private double RateOf(string tailnet) => _rates.TryGetValue(tailnet, out var rate) ? rate.PerSecond : 0;

    private static TimeSpan ProcessCpu()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    private sealed class TailnetRate
    {
        public long Pending;

        public double PerSecond;
    }
}
