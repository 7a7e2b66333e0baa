using System.Net;
using MeshNet.Control.V1;
using MeshNet.Diagnostics;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// Tells the service where this node's WireGuard socket can be reached (<c>UpdateEndpoints</c>,
/// a unary call that never disturbs the map stream): once after start, and again whenever the
/// discovered local endpoints change (re-read every refresh interval). A failed report is
/// retried with backoff until it gets through.
/// </summary>
/// <remarks>Runs on one task (<see cref="RunAsync"/>); <see cref="Current"/> may be read from any thread.</remarks>
internal sealed class EndpointReporter
{
    private readonly ControlClient _client;
    private readonly Func<IReadOnlyList<IPEndPoint>>? _discover;
    private readonly Func<byte[]> _nodeKey;
    private readonly ReconnectBackoff _backoff;
    private readonly TimeSpan _refreshInterval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private volatile IReadOnlyList<IPEndPoint> _current;

    /// <param name="client">The control connection.</param>
    /// <param name="initial">The endpoints at start.</param>
    /// <param name="discover">Re-reads the local endpoints; null when they are fixed (given in the options).</param>
    /// <param name="nodeKey">The node key to report for.</param>
    /// <param name="backoff">Retry delays after failures.</param>
    /// <param name="refreshInterval">How often to re-read the endpoints.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The log.</param>
    public EndpointReporter(ControlClient client, IReadOnlyList<IPEndPoint> initial, Func<IReadOnlyList<IPEndPoint>>? discover,
        Func<byte[]> nodeKey, ReconnectBackoff backoff, TimeSpan refreshInterval, TimeProvider time, ILogger logger)
    {
        _client = client;
        _current = initial;
        _discover = discover;
        _nodeKey = nodeKey;
        _backoff = backoff;
        _refreshInterval = refreshInterval;
        _time = time;
        _logger = logger;
    }

    /// <summary>The endpoints advertised now, most preferred first.</summary>
    public IReadOnlyList<IPEndPoint> Current => _current;

    /// <summary>Reports now, then watches for changes until <paramref name="stop"/> is cancelled. Never throws.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        bool dirty = true;
        int failures = 0;
        while (!stop.IsCancellationRequested)
        {
            if (_discover is not null)
            {
                IReadOnlyList<IPEndPoint> found;
                try
                {
                    found = _discover();
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    MeshLog.EndpointDiscoveryFailed(_logger, e);
                    found = _current;
                }
                if (!found.SequenceEqual(_current))
                {
                    _current = found;
                    dirty = true;
                    MeshLog.EndpointsChanged(_logger, string.Join(", ", found));
                }
            }
            if (dirty)
            {
                try
                {
                    var request = new UpdateEndpointsRequest { NodeKey = Google.Protobuf.ByteString.CopyFrom(_nodeKey()) };
                    request.Endpoints.Add(DataPlane.LocalEndpoints.Format(_current));
                    await _client.UpdateEndpointsAsync(request, stop).ConfigureAwait(false);
                    dirty = false;
                    failures = 0;
                    MeshLog.EndpointsReported(_logger, _current.Count);
                }
                catch (Exception) when (stop.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception e)
                {
                    var failure = ControlFailure.Classify(e, "UpdateEndpoints", _client.Url);
                    _client.Route(e); // the next attempt goes to the tailnet's owner, or to another server
                    MeshLog.EndpointReportFailed(_logger, failure.Code, failure.Message);
                    failures = Math.Min(failures + 1, 62);
                }
            }
            try
            {
                var delay = dirty ? _backoff.Next(failures) : _refreshInterval;
                await Task.Delay(delay, _time, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
