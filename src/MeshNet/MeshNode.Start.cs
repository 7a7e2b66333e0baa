using Grpc.Core;
using MeshNet.Control;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;

namespace MeshNet;

/// <summary>Starting: identity, WireGuard device, registration (or the netmap cache), stack, netmap.</summary>
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
        string? cacheNotUsed = null;
        try
        {
            MeshLog.NodeStarting(_logger, _controlUrl, _hostname);
            await _registration.LoadIdentityAsync(token).ConfigureAwait(false);
            (var cache, cacheNotUsed) = await _cache.LoadAsync(token).ConfigureAwait(false);
            await StartDeviceAsync(token).ConfigureAwait(false);
            _registration.OpenControl();
            if (cache is not null)
            {
                StartFromCache(cache, started);
                return;
            }

            var registration = await _session.RegisterAsync(token).ConfigureAwait(false);
            _addresses = await _registration.ApplyAsync(registration, inBackground: false, token).ConfigureAwait(false);
            _dataPlane!.StartStack(_addresses, _options.Tcp);
            _session.Start(_dataPlane.Device.ListenPort);
            await _session.FirstNetmapAsync(token).ConfigureAwait(false);
            MeshLog.NodeStarted(_logger, Name, string.Join(", ", _addresses), _dataPlane.Device.ListenPort, _netmap!.Peers.Count,
                (long)_time.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested
            && e is OperationCanceledException or RpcException)
        {
            var lastFailure = _session.StartFailure;
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

    /// <summary>
    /// Starts the data plane from the cache without any call to the coordination service: the
    /// stack with the saved addresses, the cached peers, rules and names; then a handshake to
    /// every peer that was online, so that peers still holding a session from the previous run
    /// switch to a new one at once. Registration and the map stream follow in the background.
    /// </summary>
    private void StartFromCache(MeshCachedNetmap cache, long started)
    {
        var snapshot = cache.ToSnapshot();
        var identity = _registration.Identity;
        _registration.Adopt(snapshot.Self, cache.Tailnet);
        _addresses = identity.Addresses.Count > 0 ? [.. identity.Addresses] : NameResolver.OrderedAddresses(snapshot.Self);
        _dataPlane!.StartStack(_addresses, _options.Tcp);
        _cache.UseCached(cache);
        PublishNetmap(snapshot);
        var device = _dataPlane.Device;
        var applied = _dataPlane.Peers!.Applied;
        foreach (var peer in snapshot.Peers.Values)
        {
            if (peer.Online && peer.Key is not null && applied.ContainsKey(peer.Key))
            {
                device.InitiateHandshake(peer.Key);
            }
        }
        MeshLog.StartedFromCache(_logger, snapshot.Self.Name, cache.ReceivedAt, snapshot.Peers.Count, (long)_time.GetElapsedTime(started).TotalMilliseconds);
        _session.ConnectInBackground(device.ListenPort);
    }

    /// <summary>
    /// Binds the WireGuard socket: the configured port, or (port 0) the port of the previous run
    /// when it is free, so that peers holding the old endpoint reach the node; then remembers the
    /// port in the identity.
    /// </summary>
    private async Task StartDeviceAsync(CancellationToken cancellationToken)
    {
        var identity = _registration.Identity;
        int previous = identity.ListenPort;
        if (_options.ListenPort == 0 && previous != 0)
        {
            try
            {
                _dataPlane = await NodeDataPlane.StartDeviceAsync(identity.PrivateKey, _options.BindAddress, previous, _time,
                    _options.LoggerFactory, _logger, cancellationToken).ConfigureAwait(false);
            }
            catch (MeshException e) when (e.ErrorCode is MeshErrorCode.AddressInUse or MeshErrorCode.InvalidConfiguration)
            {
                _dataPlane = null;
            }
        }
        _dataPlane ??= await NodeDataPlane.StartDeviceAsync(identity.PrivateKey, _options.BindAddress, _options.ListenPort, _time,
            _options.LoggerFactory, _logger, cancellationToken).ConfigureAwait(false);
        int bound = _dataPlane.Device.ListenPort;
        if (_options.ListenPort == 0 && previous != 0 && bound != previous)
        {
            MeshLog.PreviousPortTaken(_logger, previous, bound);
        }
        if (bound != previous)
        {
            await _registration.RememberListenPortAsync(bound, cancellationToken).ConfigureAwait(false);
        }
    }
}
