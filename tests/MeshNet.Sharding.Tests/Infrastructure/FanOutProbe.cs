using System.Net;

namespace MeshNet.Sharding.Tests.Infrastructure;

/// <summary>
/// Measures a tailnet's fan-out: one node reports a new endpoint, and the probe times how long
/// each other node of the tailnet takes to have it in its netmap (a delivery), and how long until
/// every one has (from the report's start). One probe at a time, every <c>interval</c>, until
/// stopped; samples are kept by phase.
/// </summary>
internal sealed class FanOutProbe : IDisposable
{
    private static readonly TimeSpan SampleTimeout = TimeSpan.FromSeconds(10);

    private readonly ControlOnlyNode _reporter;
    private readonly List<ControlOnlyNode> _watchers;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, List<TimeSpan>> _samples = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<TimeSpan>> _deliveries = new(StringComparer.Ordinal);
    private readonly List<TimeSpan> _pending = [];
    private long _started;
    private IPEndPoint? _expected;
    private HashSet<ControlOnlyNode> _waiting = [];
    private TaskCompletionSource? _allSeen;
    private int _timeouts;

    public FanOutProbe(NodeFleet fleet)
    {
        _reporter = fleet.Nodes[0];
        _watchers = fleet.Nodes.Skip(1).ToList();
        foreach (var watcher in _watchers)
        {
            watcher.NetmapApplied += OnNetmap;
        }
    }

    /// <summary>Probes that did not reach every node within 10 s.</summary>
    public int Timeouts => Volatile.Read(ref _timeouts);

    /// <summary>The times until every node had a change, of the probes taken in <paramref name="phase"/>.</summary>
    public IReadOnlyList<TimeSpan> Samples(string phase)
    {
        lock (_gate)
        {
            return _samples.TryGetValue(phase, out var list) ? [.. list] : [];
        }
    }

    /// <summary>The time each node took to have a change, of the probes taken in <paramref name="phase"/>.</summary>
    public IReadOnlyList<TimeSpan> Deliveries(string phase)
    {
        lock (_gate)
        {
            return _deliveries.TryGetValue(phase, out var list) ? [.. list] : [];
        }
    }

    /// <summary>Probes until <paramref name="stop"/>, recording under whatever <paramref name="phase"/> says at each probe's start.</summary>
    public async Task RunAsync(Func<string> phase, TimeSpan interval, CancellationToken stop)
    {
        int port = 1024;
        while (!stop.IsCancellationRequested)
        {
            var endpoint = new IPEndPoint(IPAddress.Parse("198.51.100.7"), port++);
            var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            string name = phase();
            long started = TimeProvider.System.GetTimestamp();
            lock (_gate)
            {
                _expected = endpoint;
                _waiting = [.. _watchers];
                _allSeen = seen;
                _started = started;
                _pending.Clear();
            }
            try
            {
                await _reporter.UpdateEndpointsAsync(endpoint.ToString(), stop);
                await seen.Task.WaitAsync(SampleTimeout, stop);
                var elapsed = TimeProvider.System.GetElapsedTime(started);
                lock (_gate)
                {
                    Add(_samples, name, [elapsed]);
                    Add(_deliveries, name, _pending);
                }
            }
            catch (TimeoutException)
            {
                Interlocked.Increment(ref _timeouts);
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
            try
            {
                await Task.Delay(interval, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static void Add(Dictionary<string, List<TimeSpan>> samples, string phase, IEnumerable<TimeSpan> values)
    {
        if (!samples.TryGetValue(phase, out var list))
        {
            samples[phase] = list = [];
        }
        list.AddRange(values);
    }

    public void Dispose()
    {
        foreach (var watcher in _watchers)
        {
            watcher.NetmapApplied -= OnNetmap;
        }
    }

    private void OnNetmap(ControlOnlyNode watcher)
    {
        lock (_gate)
        {
            if (_expected is null || !_waiting.Contains(watcher) || !watcher.PeerEndpoints(_reporter.NodeId).Contains(_expected))
            {
                return;
            }
            _waiting.Remove(watcher);
            _pending.Add(TimeProvider.System.GetElapsedTime(_started));
            if (_waiting.Count == 0)
            {
                _allSeen?.TrySetResult();
            }
        }
    }
}
