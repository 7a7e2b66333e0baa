using System.Net.Http;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Protocol;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// The node's gRPC connection to the coordination service, which may be several servers of one
/// deployment: one HTTP/2 channel per server URL (TLS, or plain HTTP/2 to loopback only), every
/// call signed by <see cref="ProofInterceptor"/> with the current <see cref="Signer"/>. Calls go
/// to the <see cref="Url"/> in use. A server that does not serve the node's tailnet answers with a
/// redirect, which unary calls follow at once (at most <see cref="MaxRedirects"/> hops) and the
/// map stream follows on its next attempt (<see cref="Route"/>); a server that cannot be reached,
/// or says nobody serves the tailnet right now, makes the client try the next known server.
/// Calls throw what gRPC throws; callers classify with <see cref="ControlFailure.Classify"/>.
/// </summary>
/// <remarks>
/// Thread-safe: the server list and the current URL are guarded by <c>_gate</c>; channels are
/// created on first use and kept. Disposing closes every channel and its connections.
/// </remarks>
internal sealed class ControlClient : IDisposable
{
    /// <summary>The largest message accepted from the service (a full netmap of a large tailnet).</summary>
    public const int MaxReceiveMessageSize = 64 << 20;

    /// <summary>How many redirects a unary call follows before giving up.</summary>
    public const int MaxRedirects = 3;

    /// <summary>How long a server that could not be reached is passed over when choosing the next one.</summary>
    private static readonly TimeSpan PassOver = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait before trying again when a redirect names a server that could not be reached.</summary>
    private static readonly TimeSpan RedirectBackoff = TimeSpan.FromMilliseconds(250);

    private readonly Lock _gate = new();
    private readonly List<Uri> _servers = [];
    private readonly Dictionary<Uri, (long Since, ulong Epoch)> _unreachable = [];
    private readonly Dictionary<Uri, (GrpcChannel Channel, V1.Control.ControlClient Client)> _channels = [];
    private readonly Action<SocketsHttpHandler>? _configureHandler;
    private readonly ILoggerFactory? _loggerFactory;
    private int _current;
    private ulong _epochSeen;
    private volatile ControlSigner? _signer;
    private volatile string? _tailnet;
    private bool _disposed;

    /// <param name="urls">The configured servers, most preferred first (at least one).</param>
    /// <param name="configureHandler">Adjusts each channel's HTTP handler (trust, proxies).</param>
    /// <param name="loggerFactory">gRPC's logging.</param>
    public ControlClient(IReadOnlyList<Uri> urls, Action<SocketsHttpHandler>? configureHandler, ILoggerFactory? loggerFactory)
    {
        ArgumentOutOfRangeException.ThrowIfZero(urls.Count);
        _configureHandler = configureHandler;
        _loggerFactory = loggerFactory;
        foreach (var url in urls)
        {
            AddServer(url);
        }
        // Fail on a bad handler configuration now rather than at the first call.
        _ = ClientFor(_servers[0]);
    }

    public ControlClient(Uri url, Action<SocketsHttpHandler>? configureHandler, ILoggerFactory? loggerFactory)
        : this([url], configureHandler, loggerFactory)
    {
    }

    /// <summary>The server calls go to now.</summary>
    public Uri Url
    {
        get
        {
            lock (_gate)
            {
                return _servers[_current];
            }
        }
    }

    /// <summary>Every server the client knows (configured, learned from the netmap, redirected to).</summary>
    public IReadOnlyList<Uri> Servers
    {
        get
        {
            lock (_gate)
            {
                return [.. _servers];
            }
        }
    }

    /// <summary>The signer for the node key in use; set after <see cref="GetServerInfoAsync"/>. The client does not own it.</summary>
    public ControlSigner? Signer
    {
        get => _signer;
        set => _signer = value;
    }

    /// <summary>The node's tailnet once known: sent with every call so that a load balancer can route by it.</summary>
    public string? Tailnet
    {
        get => _tailnet;
        set => _tailnet = value;
    }

    /// <summary>
    /// The server in use answered (a message on the map stream, or a refusal in its own words):
    /// it is no longer passed over as unreachable. A mark left from an earlier outage would
    /// otherwise make every server look down and send the next attempts round to a dead one.
    /// </summary>
    public void Heard()
    {
        lock (_gate)
        {
            _unreachable.Remove(_servers[_current]);
        }
    }

    /// <summary>
    /// Records the highest tailnet epoch the node has applied (the map stream calls this), so that a
    /// redirect to a server this client failed to reach is followed only when that server took the
    /// tailnet after the failure (its epoch is newer), not when it names a dead owner's lease.
    /// </summary>
    public void SawEpoch(ulong epoch)
    {
        lock (_gate)
        {
            _epochSeen = Math.Max(_epochSeen, epoch);
        }
    }

    /// <summary>
    /// Adds the servers a netmap lists (URLs that fail the transport policy are ignored: plain
    /// HTTP only to loopback). The server in use stays.
    /// </summary>
    public void Learn(IEnumerable<string> urls)
    {
        foreach (var text in urls)
        {
            if (Uri.TryCreate(text, UriKind.Absolute, out var url) && IsAcceptable(url))
            {
                AddServer(url);
            }
        }
    }

    /// <summary>
    /// Where the next attempt goes after <paramref name="failure"/>: to the owner a redirect names
    /// (<see cref="ControlRouteKind.Redirected"/>), or to the next known server when this one could not
    /// be reached or said nobody serves the tailnet now. Returns how long the service asked to wait.
    /// </summary>
    public ControlRoute Route(Exception failure)
    {
        if (failure is RpcException rpc)
        {
            var reason = rpc.Trailers.GetValue(ControlErrors.TrailerKey);
            if (reason is not null && reason != ControlErrors.StoreUnreachable)
            {
                // The server answered in its own words: it is up, whatever was seen of it before.
                Heard();
            }
            if (reason == ControlErrors.NotOwner && rpc.Trailers.GetValue(ControlErrors.RedirectTrailer) is { } target &&
                Uri.TryCreate(target, UriKind.Absolute, out var owner) && IsAcceptable(owner))
            {
                ulong.TryParse(rpc.Trailers.GetValue(ControlErrors.EpochTrailer), out var ownerEpoch);
                if (RecentlyUnreachable(owner, ownerEpoch))
                {
                    // Sent back to a server this client just failed to reach, under a lease no newer than
                    // when it failed (it died; its lease has not expired yet): wait a little elsewhere
                    // rather than bounce between them. A newer epoch means it came back and took the tailnet.
                    return new ControlRoute(ControlRouteKind.Rotated, RedirectBackoff, Rotate());
                }
                SwitchTo(owner);
                return new ControlRoute(ControlRouteKind.Redirected, TimeSpan.Zero, owner);
            }
            TimeSpan? retryAfter = long.TryParse(rpc.Trailers.GetValue(ControlErrors.RetryAfterTrailer), out var milliseconds)
                ? TimeSpan.FromMilliseconds(Math.Clamp(milliseconds, 0, 60_000))
                : null;
            if (reason is ControlErrors.NoOwner or ControlErrors.NotOwner or ControlErrors.StoreUnreachable || rpc.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                if (reason == ControlErrors.StoreUnreachable || (reason is null && rpc.StatusCode == StatusCode.Unavailable && rpc.Status.DebugException is not null))
                {
                    // The server is down (the failure is this client's own: no connection, a broken
                    // one) or says it is cut off from the store. A status the server itself sent
                    // without a reason (stopping, reloading a tailnet) says nothing about it.
                    MarkUnreachable();
                }
                return new ControlRoute(ControlRouteKind.Rotated, retryAfter ?? TimeSpan.Zero, Rotate());
            }
            return new ControlRoute(ControlRouteKind.Stay, retryAfter ?? TimeSpan.Zero, Url);
        }
        if (failure is HttpRequestException or IOException or System.Net.Sockets.SocketException)
        {
            MarkUnreachable();
            return new ControlRoute(ControlRouteKind.Rotated, TimeSpan.Zero, Rotate());
        }
        return new ControlRoute(ControlRouteKind.Stay, TimeSpan.Zero, Url);
    }

    public Task<ServerInfo> GetServerInfoAsync(CancellationToken cancellationToken) =>
        FollowAsync(client => client.GetServerInfoAsync(new GetServerInfoRequest(), Options(cancellationToken)).ResponseAsync);

    public Task<RegisterResponse> RegisterAsync(RegisterRequest request, CancellationToken cancellationToken) =>
        FollowAsync(client => client.RegisterAsync(request, Options(cancellationToken)).ResponseAsync);

    /// <summary>Opens the map stream on the server in use; its failures are routed by the caller (<see cref="Route"/>).</summary>
    public AsyncServerStreamingCall<MapResponse> OpenMap(MapRequest request, CancellationToken cancellationToken) =>
        ClientFor(Url).Map(request, Options(cancellationToken));

    public Task UpdateEndpointsAsync(UpdateEndpointsRequest request, CancellationToken cancellationToken) =>
        FollowAsync(client => client.UpdateEndpointsAsync(request, Options(cancellationToken)).ResponseAsync);

    /// <summary>Closes every channel. Idempotent.</summary>
    public void Dispose()
    {
        List<GrpcChannel> channels;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            channels = [.. _channels.Values.Select(entry => entry.Channel)];
            _channels.Clear();
        }
        foreach (var channel in channels)
        {
            channel.Dispose();
        }
    }

    /// <summary>Runs a unary call on the server in use, following redirects at once.</summary>
    private async Task<T> FollowAsync<T>(Func<V1.Control.ControlClient, Task<T>> call)
    {
        for (int hop = 0; ; hop++)
        {
            try
            {
                return await call(ClientFor(Url)).ConfigureAwait(false);
            }
            catch (RpcException e) when (hop < MaxRedirects && Route(e).Kind == ControlRouteKind.Redirected)
            {
                // Follow: the next iteration calls the owner.
            }
        }
    }

    private CallOptions Options(CancellationToken cancellationToken)
    {
        Metadata? headers = null;
        if (_tailnet is { Length: > 0 } tailnet)
        {
            headers = new Metadata { { ControlErrors.TailnetHeader, tailnet } };
        }
        return new CallOptions(headers, cancellationToken: cancellationToken);
    }

    private static bool IsAcceptable(Uri url) =>
        (url.Scheme == Uri.UriSchemeHttps || (url.Scheme == Uri.UriSchemeHttp && ControlUrlPolicy.IsLoopback(url))) &&
        string.IsNullOrEmpty(url.UserInfo) && url.AbsolutePath == "/" && string.IsNullOrEmpty(url.Query);

    private void AddServer(Uri url)
    {
        lock (_gate)
        {
            if (!_servers.Any(known => SameServer(known, url)))
            {
                _servers.Add(url);
            }
        }
    }

    private void SwitchTo(Uri url)
    {
        lock (_gate)
        {
            int index = _servers.FindIndex(known => SameServer(known, url));
            if (index < 0)
            {
                _servers.Add(url);
                index = _servers.Count - 1;
            }
            _current = index;
            _unreachable.Remove(_servers[index]);
        }
    }

    /// <summary>The next known server, passing over those that could not be reached recently (unless all of them could not).</summary>
    private Uri Rotate()
    {
        long now = Environment.TickCount64;
        lock (_gate)
        {
            for (int step = 1; step <= _servers.Count; step++)
            {
                int candidate = (_current + step) % _servers.Count;
                if (!_unreachable.TryGetValue(_servers[candidate], out var mark) || now - mark.Since > (long)PassOver.TotalMilliseconds)
                {
                    _current = candidate;
                    return _servers[_current];
                }
            }
            _current = (_current + 1) % _servers.Count;
            return _servers[_current];
        }
    }

    /// <summary>True when <paramref name="url"/> could not be reached lately and <paramref name="ownerEpoch"/> is no newer than the epoch seen then.</summary>
    private bool RecentlyUnreachable(Uri url, ulong ownerEpoch)
    {
        lock (_gate)
        {
            int index = _servers.FindIndex(known => SameServer(known, url));
            return index >= 0 && _unreachable.TryGetValue(_servers[index], out var mark) &&
                Environment.TickCount64 - mark.Since <= (long)PassOver.TotalMilliseconds &&
                ownerEpoch <= mark.Epoch;
        }
    }

    private void MarkUnreachable()
    {
        lock (_gate)
        {
            _unreachable[_servers[_current]] = (Environment.TickCount64, _epochSeen);
        }
    }

    private V1.Control.ControlClient ClientFor(Uri url)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_channels.TryGetValue(url, out var entry))
            {
                return entry.Client;
            }
            var channel = CreateChannel(url);
            var client = new V1.Control.ControlClient(channel.Intercept(new ProofInterceptor(() => _signer)));
            _channels[url] = (channel, client);
            return client;
        }
    }

    private GrpcChannel CreateChannel(Uri url)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(15),
            EnableMultipleHttp2Connections = true,
            // HTTP/2 pings notice a dead connection (a silent middlebox, a vanished or paused server)
            // well before the keep-alive watchdog does.
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        };
        try
        {
            _configureHandler?.Invoke(handler);
            return GrpcChannel.ForAddress(url, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = true,
                LoggerFactory = _loggerFactory,
                MaxReceiveMessageSize = MaxReceiveMessageSize,
            });
        }
        catch
        {
            handler.Dispose();
            throw;
        }
    }

    private static bool SameServer(Uri a, Uri b) =>
        Uri.Compare(a, b, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
