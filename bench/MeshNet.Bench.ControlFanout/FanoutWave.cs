using System.Diagnostics;
using MeshNet.Control.V1;

namespace MeshNet.Bench.ControlFanout;

/// <summary>
/// One measured change: which delta the participating nodes wait for, when the change was made,
/// and when each node applied it. Thread-safe: nodes report from their stream tasks.
/// </summary>
internal sealed class FanoutWave(Func<MapDelta, bool> matches, int expected)
{
    private readonly double[] _latencies = new double[expected];
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _arrived;
    private long _bytes;
    private long _start;

    public int Expected => expected;

    public int Arrived => Volatile.Read(ref _arrived);

    public Task Done => _done.Task;

    /// <summary>Per-node latencies in milliseconds, for the nodes that arrived.</summary>
    public ReadOnlySpan<double> Latencies => _latencies.AsSpan(0, Math.Min(Arrived, expected));

    /// <summary>Milliseconds from the start to the last arrival.</summary>
    public double LastMs { get; private set; }

    public double BytesPerDelta => Arrived == 0 ? 0 : (double)Interlocked.Read(ref _bytes) / Arrived;

    public void Start() => _start = Stopwatch.GetTimestamp();

    /// <summary>A node applied <paramref name="delta"/> (a message of <paramref name="bytes"/> bytes): true when it was this wave's.</summary>
    public bool TryArrive(MapDelta delta, int bytes)
    {
        if (!matches(delta))
        {
            return false;
        }
        double ms = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
        Interlocked.Add(ref _bytes, bytes);
        int index = Interlocked.Increment(ref _arrived) - 1;
        if (index < expected)
        {
            _latencies[index] = ms;
        }
        if (index == expected - 1)
        {
            LastMs = ms;
            _done.TrySetResult();
        }
        return true;
    }
}
