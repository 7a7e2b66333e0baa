using System.Net;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;

namespace MeshNet;

/// <summary>Starting: identity, WireGuard device, registration, stack, netmap.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// Starts a node: loads (or creates) its identity, binds its WireGuard socket, registers
    /// with the coordination service, and returns once the node has its addresses and its first
    /// netmap. A registered node with a usable netmap cache (<see cref="MeshNodeOptions.NetmapStore"/>:
    /// this node's, not older than <see cref="MeshNodeOptions.NetmapCacheMaxAge"/>, not forbidden
    /// by the service) starts from it instead, without contacting the service: it returns as soon
    /// as its peers, rules and names are in place, and registers and opens the netmap stream in the
    /// background (<see cref="MeshNodeStatus.NetmapSource"/> says which netmap is in use).
    /// </summary>
    /// <param name="options">The node's settings; validated and copied.</param>
    /// <param name="cancellationToken">Cancels the start (the half-built node is disposed).</param>
    /// <returns>The running node; the caller disposes it.</returns>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    /// <exception cref="MeshException">
    /// The node cannot start; <see cref="MeshException.ErrorCode"/> says why:
    /// <see cref="MeshErrorCode.ControlUnreachable"/> (not reached, or no netmap, within
    /// <see cref="MeshNodeOptions.StartTimeout"/>; the message also says why a configured netmap cache was not used), an auth-key code
    /// (<see cref="MeshErrorCode.AuthKeyRequired"/>, <see cref="MeshErrorCode.AuthKeyUnknown"/>,
    /// <see cref="MeshErrorCode.AuthKeyExpired"/>, <see cref="MeshErrorCode.AuthKeyUsedUp"/>,
    /// <see cref="MeshErrorCode.AuthKeyRevoked"/>), <see cref="MeshErrorCode.TagsNotPermitted"/>,
    /// <see cref="MeshErrorCode.NodeKeyExpired"/> (the key expired, by its lifetime or by an administrator, and no <see cref="MeshNodeOptions.AuthKey"/> is configured to re-authenticate),
    /// <see cref="MeshErrorCode.ControlRejected"/>, <see cref="MeshErrorCode.InvalidConfiguration"/>
    /// (plain HTTP to a host that is not loopback), <see cref="MeshErrorCode.AddressInUse"/>
    /// (<see cref="MeshNodeOptions.ListenPort"/> is taken) or <see cref="MeshErrorCode.StateStoreFailed"/>.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static async Task<MeshNode> StartAsync(MeshNodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var snapshot = options.Snapshot();
        ControlUrlPolicy.Check(snapshot.ControlUrl!);
        foreach (var url in snapshot.ControlUrls)
        {
            ControlUrlPolicy.Check(url);
        }
        cancellationToken.ThrowIfCancellationRequested();

        var node = new MeshNode(snapshot);
        try
        {
            await node.StartCoreAsync(cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch (Exception e)
        {
            await node.DisposeAsync().ConfigureAwait(false);
            if (e is MeshException mesh)
            {
                MeshLog.StartFailed(node._logger, mesh.ErrorCode, mesh.Message);
            }
            throw;
        }
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        var timeout = _options.StartTimeout;
        using var deadline = timeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var token = linked.Token;
        ControlFailure? lastFailure = null;
        string? cacheNotUsed = null;
        try
        {
            MeshLog.NodeStarting(_logger, _controlUrl, _hostname);
            await LoadIdentityAsync(token).ConfigureAwait(false);
            (var cache, cacheNotUsed) = await LoadNetmapCacheAsync(token).ConfigureAwait(false);
            await StartDeviceAsync(token).ConfigureAwait(false);
            _control = new ControlClient([_controlUrl, .. _options.ControlUrls], _options.ConfigureControlHandler, _options.LoggerFactory)
            {
                Tailnet = _identity!.Tailnet,
            };
            if (cache is not null)
            {
                StartFromCache(cache, started);
                return;
            }

            RegisterResponse registration;
            for (int failures = 0; ; failures = Math.Min(failures + 1, 62))
            {
                try
                {
                    registration = await RegisterAsync(token).ConfigureAwait(false);
                    break;
                }
                catch (Exception e) when (!token.IsCancellationRequested)
                {
                    var failure = ControlFailure.Classify(e, "Registration", _control.Url);
                    if (!failure.Transient)
                    {
                        throw failure.ToException();
                    }
                    lastFailure = failure;
                    var delay = RetryDelay(_control.Route(e), failures);
                    MeshLog.StartRetry(_logger, failure.Code, failure.Message, delay);
                    await Task.Delay(delay, _time, token).ConfigureAwait(false);
                }
            }
            await ApplyRegistrationAsync(registration, keepAddresses: false, token).ConfigureAwait(false);
            _dataPlane!.StartStack(_addresses, _options.Tcp);
            StartControlLoops();
            try
            {
                await _mapLoop!.FirstNetmap.WaitAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                lastFailure = _mapLoop!.LastFailure ?? lastFailure;
                throw;
            }
            MeshLog.NodeStarted(_logger, Name, string.Join(", ", _addresses), _dataPlane!.Device.ListenPort, _netmap!.Peers.Count,
                (long)_time.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested
            && e is OperationCanceledException or RpcException)
        {
            string last = lastFailure is null ? "" : $" Last error: {lastFailure.Message}";
            string cacheNote = cacheNotUsed is null ? "" : $" The netmap cache was not used: {cacheNotUsed}.";
            throw new MeshException(MeshErrorCode.ControlUnreachable,
                $"The node could not register with the coordination service at {_controlUrl} and receive its netmap within {timeout}.{last}{cacheNote}",
                lastFailure?.Exception);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested
            && !(e is OperationCanceledException canceled && canceled.CancellationToken == cancellationToken))
        {
            // The caller's token gives an OperationCanceledException that names it (gRPC reports a
            // cancelled call as RpcException(Cancelled), and linked tokens are not the caller's).
            throw new OperationCanceledException("Starting the node was cancelled.", e, cancellationToken);
        }
    }

    private async Task LoadIdentityAsync(CancellationToken cancellationToken)
    {
        var store = _options.StateStore;
        if (store is null)
        {
            _ownedStore = new InMemoryStateStore();
            store = _options.StateStore = _ownedStore;
        }
        _identity = await store.LoadAsync(cancellationToken).ConfigureAwait(false);
        if (_identity is null)
        {
            _identity = MeshNodeIdentity.Generate();
            // Saved before the service hears of the key: a node that registers and then crashes
            // comes back as the same node instead of orphaning a registration.
            await store.SaveAsync(_identity, cancellationToken).ConfigureAwait(false);
            MeshLog.IdentityCreated(_logger, _identity.PublicKey.ToShortString());
            return;
        }
        MeshLog.IdentityLoaded(_logger, _identity.PublicKey.ToShortString(), _identity.NodeId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unregistered");
        if (_identity.IsRegistered && !UrlEquals(_identity.ControlUrl!, _controlUrl) && !_options.ControlUrls.Any(url => UrlEquals(_identity.ControlUrl!, url)))
        {
            MeshLog.ControlUrlChanged(_logger, _identity.ControlUrl, _controlUrl);
            _identity.NodeId = null;
            _identity.Tailnet = null;
            _identity.Addresses = [];
            _identity.ControlUrl = null;
        }
    }

    private void StartControlLoops()
    {
        var bind = _options.BindAddress;
        ushort port = _dataPlane!.Device.ListenPort;
        var initial = _options.AdvertisedEndpoints ?? LocalEndpoints.Discover(bind, port);
        Func<IReadOnlyList<IPEndPoint>>? discover = _options.AdvertisedEndpoints is null ? () => LocalEndpoints.Discover(bind, port) : null;
        // The node key is read at each use: a key rotation replaces it.
        _endpoints = new EndpointReporter(_control!, initial, discover, () => _identity!.PublicKey.AsSpan().ToArray(), _backoff,
            _options.EndpointRefreshInterval, _time, _logger);
        _mapLoop = new MapStreamLoop(_control!, () =>
        {
            var request = new MapRequest { NodeKey = ByteString.CopyFrom(_identity!.PublicKey.AsSpan()), Instance = _instance };
            request.Endpoints.Add(LocalEndpoints.Format(_endpoints.Current));
            return request;
        }, OnNetmap, RecoverAsync, _backoff, _options.ControlKeepAliveTimeout, _time, _logger);
        var stop = _stopping.Token;
        _mapTask = _mapLoop.RunAsync(stop);
        _endpointTask = _endpoints.RunAsync(stop);
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
        if (route.Kind == ControlRouteKind.Rotated && failures < _control!.Servers.Count)
        {
            return _backoff.Jitter(TimeSpan.FromMilliseconds(100));
        }
        return _backoff.Next(failures);
    }

    private static bool UrlEquals(Uri a, Uri b) => Uri.Compare(a, b, UriComponents.SchemeAndServer | UriComponents.Path,
        UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
