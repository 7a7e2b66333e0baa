using System.Net;
using Google.Protobuf;
using MeshNet.Control.V1;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// A node's session with the coordination service: registers through the node's
/// <see cref="NodeRegistration"/>, retrying as long as the failures are transient (on the start
/// path, <see cref="RegisterAsync"/>; or in the background after a start from the netmap cache,
/// <see cref="ConnectInBackground"/>), then runs the <see cref="MapStreamLoop"/> that keeps the
/// netmap stream open and the <see cref="EndpointReporter"/> that tells the service where the
/// WireGuard socket can be reached, each on its own task.
/// </summary>
/// <remarks>
/// <para><b>Thread safety</b>: <see cref="RegisterAsync"/>, <see cref="Start"/> and
/// <see cref="ConnectInBackground"/> are called on the start path, at most one of the last two,
/// once; the loops are then set on the start path or on the background connect task, and the
/// properties may be read from any thread.</para>
/// <para><b>Ownership</b>: owns the loops, their tasks and the token that stops them; the
/// registration and its control connection are the node's.</para>
/// <para><b>Disposal</b>: <see cref="DisposeAsync"/> stops the background connect and both loops
/// and waits for their tasks to end; when it returns nothing of the session runs. Idempotent;
/// nothing may be started after it.</para>
/// </remarks>
internal sealed class NodeControlSession : IAsyncDisposable
{
    private readonly NodeRegistration _registration;
    private readonly MeshNodeOptions _options;
    private readonly Action<NetmapSnapshot> _onNetmap;
    private readonly ReconnectBackoff _backoff;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();

    // This run's id, sent with every map stream: peers that see it change know the node
    // restarted (and lost its WireGuard sessions), even when its key and port are the same.
    private readonly string _instance = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    // Set on the start path, or on the background connect task once registered; read from any thread.
    private volatile MapStreamLoop? _mapLoop;
    private volatile EndpointReporter? _endpoints;
    private volatile ControlFailure? _startFailure; // the start path's last transient registration failure
    private volatile ControlFailure? _connectFailure; // the background registration's last failure
    private Task _mapTask = Task.CompletedTask;
    private Task _endpointTask = Task.CompletedTask;
    private Task _connectTask = Task.CompletedTask;
    private int _disposed;

    /// <param name="registration">The node's registration (and control connection).</param>
    /// <param name="options">The node's settings (reconnect delays, keep-alive, endpoints).</param>
    /// <param name="onNetmap">Receives every netmap of the stream, on the map loop's task.</param>
    /// <param name="time">The clock and timers.</param>
    /// <param name="logger">The node's log.</param>
    public NodeControlSession(NodeRegistration registration, MeshNodeOptions options, Action<NetmapSnapshot> onNetmap, TimeProvider time,
        ILogger logger)
    {
        _registration = registration;
        _options = options;
        _onNetmap = onNetmap;
        _backoff = new ReconnectBackoff(options.ControlReconnectMinDelay, options.ControlReconnectMaxDelay, options.JitterRandom);
        _time = time;
        _logger = logger;
    }

    /// <summary>True once the loops exist (the node is registered and its map stream runs).</summary>
    public bool Started => _mapLoop is not null;

    /// <summary>True while the map stream is open and has delivered at least one message.</summary>
    public bool Connected => _mapLoop?.Connected ?? false;

    /// <summary>The most recent control failure: the map stream's, else the background registration's; null when none.</summary>
    public ControlFailure? LastFailure => _mapLoop?.LastFailure ?? _connectFailure;

    /// <summary>The last failure on the start path: the map stream's, else registration's; null when none.</summary>
    public ControlFailure? StartFailure => _mapLoop?.LastFailure ?? _startFailure;

    /// <summary>The endpoints advertised now, most preferred first; empty before the loops start.</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => _endpoints?.Current ?? [];

    /// <summary>
    /// Registers on the start path: a transient failure is retried (after the delay of
    /// <see cref="RetryDelay"/>) until <paramref name="cancellationToken"/> ends the start, and is
    /// remembered in <see cref="StartFailure"/>; a refusal for good throws its <see cref="MeshException"/>.
    /// </summary>
    public async Task<RegisterResponse> RegisterAsync(CancellationToken cancellationToken)
    {
        var control = _registration.Control!;
        for (int failures = 0; ; failures = Math.Min(failures + 1, 62))
        {
            try
            {
                return await _registration.RegisterAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                var failure = ControlFailure.Classify(e, "Registration", control.Url);
                if (!failure.Transient)
                {
                    throw failure.ToException();
                }
                _startFailure = failure;
                var delay = RetryDelay(control.Route(e), failures);
                MeshLog.StartRetry(_logger, failure.Code, failure.Message, delay);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Starts the map stream and the endpoint reports of a registered node whose WireGuard socket
    /// listens on <paramref name="listenPort"/>.
    /// </summary>
    public void Start(ushort listenPort)
    {
        var control = _registration.Control!;
        var bind = _options.BindAddress;
        var initial = _options.AdvertisedEndpoints ?? LocalEndpoints.Discover(bind, listenPort);
        Func<IReadOnlyList<IPEndPoint>>? discover = _options.AdvertisedEndpoints is null ? () => LocalEndpoints.Discover(bind, listenPort) : null;
        // The node key is read at each use: a key rotation replaces it.
        var endpoints = new EndpointReporter(control, initial, discover, () => _registration.Identity.PublicKey.AsSpan().ToArray(), _backoff,
            _options.EndpointRefreshInterval, _time, _logger);
        _endpoints = endpoints;
        _mapLoop = new MapStreamLoop(control, () =>
        {
            var request = new MapRequest { NodeKey = ByteString.CopyFrom(_registration.Identity.PublicKey.AsSpan()), Instance = _instance };
            request.Endpoints.Add(LocalEndpoints.Format(endpoints.Current));
            return request;
        }, _onNetmap, _registration.RecoverAsync, _backoff, _options.ControlKeepAliveTimeout, _time, _logger);
        var stop = _stopping.Token;
        _mapTask = _mapLoop.RunAsync(stop);
        _endpointTask = endpoints.RunAsync(stop);
    }

    /// <summary>Completes when the map stream delivered its first netmap (see <see cref="MapStreamLoop.FirstNetmap"/>); call after <see cref="Start"/>.</summary>
    public Task FirstNetmapAsync(CancellationToken cancellationToken) => _mapLoop!.FirstNetmap.WaitAsync(cancellationToken);

    /// <summary>
    /// After a start from the netmap cache: registers on a task of its own, then starts the loops
    /// as <see cref="Start"/> does (see <see cref="ConnectInBackgroundAsync"/>).
    /// </summary>
    public void ConnectInBackground(ushort listenPort) => _connectTask = ConnectInBackgroundAsync(listenPort, _stopping.Token);

    /// <summary>
    /// Registers (with the usual backoff; a refusal for good is reported through
    /// <see cref="LastFailure"/> and retried at the slowest pace, as the map stream does), then
    /// opens the map stream. Runs on its own task until registered or the session stops.
    /// </summary>
    private async Task ConnectInBackgroundAsync(ushort listenPort, CancellationToken stop)
    {
        await Task.Yield();
        var controlUrl = _options.ControlUrl!;
        for (int failures = 0; ; failures = Math.Min(failures + 1, 62))
        {
            try
            {
                var registration = await _registration.RegisterAsync(stop).ConfigureAwait(false);
                await _registration.ApplyAsync(registration, inBackground: true, stop).ConfigureAwait(false);
                _connectFailure = null; // registered: an earlier failure is history, not the node's state
                break;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                var failure = ControlFailure.Classify(e, "Registration", controlUrl);
                _connectFailure = failure;
                MeshLog.CachedStartControlFailed(_logger, failure.Code, failure.Message, failure.Transient);
                var delay = failure.Transient ? _backoff.Next(failures) : _backoff.Next(int.MaxValue);
                try
                {
                    await Task.Delay(delay, _time, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
        Start(listenPort);
    }

    /// <summary>
    /// The wait before another control attempt: the service's retry time plus jitter when it gave
    /// one (nobody serves the tailnet right now), a short jitter when the next server is untried,
    /// else the backoff.
    /// </summary>
    private TimeSpan RetryDelay(ControlRoute route, int failures)
    {
        if (route.RetryAfter > TimeSpan.Zero)
        {
            return route.RetryAfter + _backoff.Jitter(route.RetryAfter / 2);
        }
        if (route.Kind == ControlRouteKind.Rotated && failures < _registration.Control!.Servers.Count)
        {
            return _backoff.Jitter(TimeSpan.FromMilliseconds(100));
        }
        return _backoff.Next(failures);
    }

    /// <summary>Stops the background connect and the loops, and waits for their tasks (see the class remarks).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            _stopping.Cancel();
            await _connectTask.ConfigureAwait(false); // sets the loops' tasks before it completes
            await _mapTask.ConfigureAwait(false);
            await _endpointTask.ConfigureAwait(false);
        }
        finally
        {
            _stopping.Dispose();
        }
    }
}
