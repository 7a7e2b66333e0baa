using MeshNet.Control.V1;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.Protocol;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// Keeps the node's netmap stream open for the node's lifetime: opens <c>Map</c>, applies
/// every message to a new <see cref="NetmapSnapshot"/> and hands it to the node, and when the
/// stream fails or ends, reconnects, resuming with the session handle, the last sequence and
/// tailnet revision applied, and the highest epoch seen (any server of the deployment can resume
/// it). A redirect to the tailnet's owner is followed at once; a server that is unreachable or
/// serves nobody right now makes the next attempt go to the next known server, after the time the
/// service asked for (plus jitter) or, once every server was tried, after
/// <see cref="ReconnectBackoff"/> (exponential, full jitter). A keep-alive watchdog on the
/// <see cref="TimeProvider"/> abandons a stream on which nothing arrived for the keep-alive timeout.
/// </summary>
/// <remarks>
/// <para>Protocol rules enforced: the first message of every stream carries the session; a
/// session the node did not ask to resume must start with a full map; sequence numbers
/// increase strictly (an older or repeated one is ignored); a delta needs a netmap to apply
/// to. A violation restarts the stream without resuming (the service then sends a full map);
/// the node keeps its last netmap meanwhile, so the data plane never notices. A message of an
/// epoch lower than one already seen comes from a server that lost the tailnet: it is never
/// applied; the stream is dropped and the next attempt goes to another server.</para>
/// <para>Runs on one task (<see cref="RunAsync"/>); the snapshots it publishes are immutable.</para>
/// </remarks>
internal sealed class MapStreamLoop
{
    private readonly ControlClient _client;
    private readonly Func<MapRequest> _requestFactory;
    private readonly Action<NetmapSnapshot> _onNetmap;
    private readonly Func<ControlFailure, CancellationToken, Task<bool>> _recover;
    private readonly ReconnectBackoff _backoff;
    private readonly TimeSpan _keepAliveTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _firstNetmap = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Used by the loop's task only.
    private string? _session;
    private ulong _lastSequence;
    private ulong _lastRevision;
    private bool _heardOnStream;
    private int _rotationsSinceHeard;

    private ulong _epoch;
    private long _staleEpochMessages;
    private long _redirectsFollowed;

    private volatile NetmapSnapshot? _current;
    private volatile ControlFailure? _lastFailure;
    private volatile bool _connected;

    /// <param name="client">The control connection.</param>
    /// <param name="requestFactory">Builds a map request (node key, current endpoints); the loop adds the resume fields.</param>
    /// <param name="onNetmap">Receives every new snapshot, on the loop's task.</param>
    /// <param name="recover">
    /// Called after a failure before the next attempt; true when it acted on the cause (rotated
    /// an expired key, fetched the server key again after a rejected proof), so that the next
    /// attempt may succeed.
    /// </param>
    /// <param name="backoff">Reconnect delays.</param>
    /// <param name="keepAliveTimeout">Silence after which a stream is abandoned.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">Where reconnects and failures are logged.</param>
    public MapStreamLoop(ControlClient client, Func<MapRequest> requestFactory, Action<NetmapSnapshot> onNetmap,
        Func<ControlFailure, CancellationToken, Task<bool>> recover, ReconnectBackoff backoff, TimeSpan keepAliveTimeout,
        TimeProvider time, ILogger logger)
    {
        _client = client;
        _requestFactory = requestFactory;
        _onNetmap = onNetmap;
        _recover = recover;
        _backoff = backoff;
        _keepAliveTimeout = keepAliveTimeout;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Completes when the first full map has been applied; fails with a <see cref="MeshException"/>
    /// when the service refuses the node for good (an expired key, an unknown node) before that;
    /// is cancelled when the loop stops first.
    /// </summary>
    public Task FirstNetmap => _firstNetmap.Task;

    /// <summary>The latest snapshot, or null before the first full map.</summary>
    public NetmapSnapshot? Current => _current;

    /// <summary>True while a stream is open and has delivered at least one message.</summary>
    public bool Connected => _connected;

    /// <summary>The most recent failure (kept after a successful reconnect, for status).</summary>
    public ControlFailure? LastFailure => _lastFailure;

    /// <summary>The highest epoch seen on any stream.</summary>
    public ulong Epoch => Volatile.Read(ref _epoch);

    /// <summary>Messages refused because their epoch was lower than one seen before.</summary>
    public long StaleEpochMessages => Interlocked.Read(ref _staleEpochMessages);

    /// <summary>Redirects to the tailnet's owner followed.</summary>
    public long RedirectsFollowed => Interlocked.Read(ref _redirectsFollowed);

    /// <summary>Watches every message and stream end (diagnostics, tests); set before <see cref="RunAsync"/>.</summary>
    public IMapStreamObserver? Observer { get; set; }

    /// <summary>Runs until <paramref name="stop"/> is cancelled. Never throws (except for bugs).</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        int failures = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                ControlFailure? failure = null;
                ControlRoute route = default;
                _heardOnStream = false;
                var url = _client.Url;
                try
                {
                    await RunStreamAsync(stop).ConfigureAwait(false);
                    MeshLog.MapStreamEnded(_logger, url);
                    Observer?.StreamEnded(null, url);
                }
                catch (Exception) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e) when (Observe(e, url))
                {
                    // Never taken: the filter only tells the observer.
                }
                catch (KeepAliveTimeoutException)
                {
                    MeshLog.MapStreamSilent(_logger, url, _keepAliveTimeout);
                    route = _client.Route(new IOException("nothing heard on the map stream"));
                }
                catch (StaleEpochException e)
                {
                    MeshLog.StaleEpochRefused(_logger, url, e.Received, e.Seen);
                    route = _client.Route(new IOException("a server that lost the tailnet"));
                }
                catch (Exception e)
                {
                    route = _client.Route(e);
                    if (route.Kind == ControlRouteKind.Redirected)
                    {
                        Interlocked.Increment(ref _redirectsFollowed);
                        MeshLog.MapStreamRedirected(_logger, url, route.Next);
                    }
                    else
                    {
                        failure = ControlFailure.Classify(e, "The netmap stream", url);
                    }
                    if (e is ControlProtocolException)
                    {
                        ForgetSession();
                    }
                }
                _connected = false;
                if (_heardOnStream)
                {
                    failures = 0;
                    _rotationsSinceHeard = 0;
                }
                bool recovered = false;
                if (failure is not null)
                {
                    _lastFailure = failure;
                    MeshLog.MapStreamFailed(_logger, failure.Code, failure.Message, failure.Transient);
                    try
                    {
                        recovered = await _recover(failure, stop).ConfigureAwait(false);
                    }
                    catch (Exception) when (stop.IsCancellationRequested)
                    {
                        break;
                    }
                    catch (Exception e)
                    {
                        failure = _lastFailure = ControlFailure.Classify(e, "Recovering the control connection", _client.Url);
                        MeshLog.MapStreamFailed(_logger, failure.Code, failure.Message, failure.Transient);
                    }
                    if (!failure.Transient && !recovered && _current is null)
                    {
                        // The node cannot start: tell StartAsync now rather than at its timeout.
                        _firstNetmap.TrySetException(failure.ToException());
                    }
                }
                var delay = NextDelay(failure, recovered, route, failures);
                if (route.Kind != ControlRouteKind.Redirected)
                {
                    failures = Math.Min(failures + 1, 62);
                }
                MeshLog.MapStreamReconnecting(_logger, delay);
                try
                {
                    await Task.Delay(delay, _time, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            _connected = false;
            _firstNetmap.TrySetCanceled(stop.IsCancellationRequested ? stop : new CancellationToken(true));
        }
    }

    private bool Observe(Exception failure, Uri url)
    {
        Observer?.StreamEnded(failure, url);
        return false;
    }

    /// <summary>
    /// The wait before the next attempt: none for a redirect (the owner is known); the service's
    /// retry time plus up to half of it again (so that nodes do not come back together); a short
    /// jitter while other servers are still untried; otherwise the exponential backoff. Refusals
    /// for good are retried too (an administrator may fix the cause), at the slowest pace.
    /// </summary>
    private TimeSpan NextDelay(ControlFailure? failure, bool recovered, ControlRoute route, int failures)
    {
        if (failure is { Transient: false } && !recovered)
        {
            return _backoff.Next(int.MaxValue);
        }
        switch (route.Kind)
        {
            case ControlRouteKind.Redirected:
                return TimeSpan.Zero;
            case ControlRouteKind.Rotated:
                _rotationsSinceHeard++;
                if (route.RetryAfter > TimeSpan.Zero)
                {
                    return route.RetryAfter + Jitter(Min(route.RetryAfter / 4, TimeSpan.FromMilliseconds(200)));
                }
                if (_rotationsSinceHeard < _client.Servers.Count)
                {
                    return Jitter(TimeSpan.FromMilliseconds(100));
                }
                break;
        }
        var backoff = _backoff.Next(failures);
        return route.RetryAfter > backoff ? route.RetryAfter + Jitter(route.RetryAfter / 2) : backoff;
    }

    private TimeSpan Jitter(TimeSpan ceiling) => _backoff.Jitter(ceiling);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>One stream: open, read until it ends or fails, with the watchdog armed throughout.</summary>
    private async Task RunStreamAsync(CancellationToken stop)
    {
        using var watchdog = new CancellationTokenSource(_keepAliveTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop, watchdog.Token);
        var request = _requestFactory();
        request.Session = _session ?? "";
        request.LastSequence = _session is null ? 0 : _lastSequence;
        request.LastRevision = _session is null ? 0 : _lastRevision;
        request.Epoch = Volatile.Read(ref _epoch);
        MeshLog.MapStreamOpening(_logger, _client.Url, _session is not null, _lastSequence);
        try
        {
            using var call = _client.OpenMap(request, linked.Token);
            bool first = true;
            while (await call.ResponseStream.MoveNext(linked.Token).ConfigureAwait(false))
            {
                watchdog.CancelAfter(_keepAliveTimeout);
                if (first)
                {
                    _client.Heard();
                }
                _heardOnStream = true;
                _connected = true;
                Apply(call.ResponseStream.Current, first);
                Observer?.MessageApplied(call.ResponseStream.Current, first, _client.Url);
                first = false;
            }
        }
        catch (Exception) when (watchdog.IsCancellationRequested && !stop.IsCancellationRequested)
        {
            throw new KeepAliveTimeoutException();
        }
    }

    /// <summary>Applies one message (see the class remarks for the rules).</summary>
    internal void Apply(MapResponse message, bool firstOfStream)
    {
        if (firstOfStream)
        {
            if (string.IsNullOrEmpty(message.Session))
            {
                throw new ControlProtocolException("the first message of the stream has no session");
            }
            if (message.Session != _session)
            {
                if (message.BodyCase != MapResponse.BodyOneofCase.Full)
                {
                    throw new ControlProtocolException("a new session does not start with a full map");
                }
                if (_session is not null)
                {
                    MeshLog.MapSessionReplaced(_logger);
                }
                _session = message.Session;
                _lastSequence = 0;
            }
        }
        else if (message.Session.Length > 0 && message.Session != _session)
        {
            throw new ControlProtocolException("the session changed in the middle of a stream");
        }

        ulong seen = Volatile.Read(ref _epoch);
        if (message.Epoch < seen)
        {
            Interlocked.Increment(ref _staleEpochMessages);
            throw new StaleEpochException(message.Epoch, seen);
        }
        if (message.Epoch != seen)
        {
            Volatile.Write(ref _epoch, message.Epoch);
            _client.SawEpoch(message.Epoch);
        }
        if (message.Sequence <= _lastSequence)
        {
            MeshLog.MapMessageIgnored(_logger, message.Sequence, _lastSequence);
            return;
        }
        switch (message.BodyCase)
        {
            case MapResponse.BodyOneofCase.Full:
                Publish(NetmapApplier.ApplyFull(message.Full, _session!, message.Sequence, message.Revision, message.Epoch));
                MeshLog.FullMapApplied(_logger, message.Sequence, _current!.Peers.Count);
                break;
            case MapResponse.BodyOneofCase.Delta:
                var current = _current ?? throw new ControlProtocolException("a delta before any full map");
                var next = NetmapApplier.ApplyDelta(current, message.Delta, message.Sequence, out int ignored, message.Revision, message.Epoch);
                if (ignored > 0)
                {
                    MeshLog.PatchesIgnored(_logger, ignored, message.Sequence);
                }
                Publish(next);
                break;
            default:
                // A keep-alive, or a body type this version does not know: nothing to apply.
                break;
        }
        _lastSequence = message.Sequence;
        _lastRevision = message.Revision;
    }

    private void Publish(NetmapSnapshot map)
    {
        _current = map;
        _onNetmap(map);
        _firstNetmap.TrySetResult();
    }

    private void ForgetSession()
    {
        _session = null;
        _lastSequence = 0;
        _lastRevision = 0;
    }

    /// <summary>The watchdog fired: nothing arrived within the keep-alive timeout.</summary>
    private sealed class KeepAliveTimeoutException : Exception;

    /// <summary>A message of an epoch lower than one seen: from a server that lost the tailnet.</summary>
    private sealed class StaleEpochException(ulong received, ulong seen) : Exception
    {
        public ulong Received { get; } = received;

        public ulong Seen { get; } = seen;
    }

    /// <summary>True when the failure means the server key may have changed (a rejected proof).</summary>
    public static bool NeedsNewServerKey(ControlFailure failure) => failure.Reason == ControlErrors.BadProof;
}
