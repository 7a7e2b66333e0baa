using System.Net;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>Starting: identity, WireGuard device, registration, stack, netmap.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// Starts a node: loads (or creates) its identity, binds its WireGuard socket, registers
    /// with the coordination service, and returns once the node has its addresses and its first
    /// netmap.
    /// </summary>
    /// <param name="options">The node's settings; validated and copied.</param>
    /// <param name="cancellationToken">Cancels the start (the half-built node is disposed).</param>
    /// <returns>The running node; the caller disposes it.</returns>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    /// <exception cref="MeshException">
    /// The node cannot start; <see cref="MeshException.ErrorCode"/> says why:
    /// <see cref="MeshErrorCode.ControlUnreachable"/> (not reached, or no netmap, within
    /// <see cref="MeshNodeOptions.StartTimeout"/>), an auth-key code
    /// (<see cref="MeshErrorCode.AuthKeyRequired"/>, <see cref="MeshErrorCode.AuthKeyUnknown"/>,
    /// <see cref="MeshErrorCode.AuthKeyExpired"/>, <see cref="MeshErrorCode.AuthKeyUsedUp"/>,
    /// <see cref="MeshErrorCode.AuthKeyRevoked"/>), <see cref="MeshErrorCode.TagsNotPermitted"/>,
    /// <see cref="MeshErrorCode.NodeKeyExpired"/> (and no auth key to register a new key with),
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
        try
        {
            string hostname = _options.Hostname ?? Environment.MachineName;
            MeshLog.NodeStarting(_logger, _controlUrl, hostname);
            await LoadIdentityAsync(token).ConfigureAwait(false);
            await StartDeviceAsync(token).ConfigureAwait(false);
            _control = new ControlClient(_controlUrl, _options.ConfigureControlHandler, _options.LoggerFactory);

            RegisterResponse registration;
            for (int failures = 0; ; failures = Math.Min(failures + 1, 62))
            {
                try
                {
                    registration = await RegisterAsync(hostname, token).ConfigureAwait(false);
                    break;
                }
                catch (Exception e) when (!token.IsCancellationRequested)
                {
                    var failure = ControlFailure.Classify(e, "Registration", _controlUrl);
                    if (!failure.Transient)
                    {
                        throw failure.ToException();
                    }
                    lastFailure = failure;
                    var delay = _backoff.Next(failures);
                    MeshLog.StartRetry(_logger, failure.Code, failure.Message, delay);
                    await Task.Delay(delay, _time, token).ConfigureAwait(false);
                }
            }
            await ApplyRegistrationAsync(registration, token).ConfigureAwait(false);
            _dataPlane!.StartStack(_addresses);
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
            throw new MeshException(MeshErrorCode.ControlUnreachable,
                $"The node could not register with the coordination service at {_controlUrl} and receive its netmap within {timeout}.{last}",
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
        if (_identity.IsRegistered && !UrlEquals(_identity.ControlUrl!, _controlUrl))
        {
            MeshLog.ControlUrlChanged(_logger, _identity.ControlUrl, _controlUrl);
            _identity.NodeId = null;
            _identity.Tailnet = null;
            _identity.Addresses = [];
            _identity.ControlUrl = null;
        }
    }

    private async Task StartDeviceAsync(CancellationToken cancellationToken)
    {
        _dataPlane = await NodeDataPlane.StartDeviceAsync(_identity!.PrivateKey, _options.BindAddress, _options.ListenPort, _time,
            _options.LoggerFactory, _logger, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Fetches the server key (once), then registers; rotates an expired key when an auth key allows it.</summary>
    private async Task<RegisterResponse> RegisterAsync(string hostname, CancellationToken cancellationToken)
    {
        await EnsureSignerAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        var identity = _identity!;
        string? authKey = _options.AuthKey;
        bool registered = identity.IsRegistered;
        try
        {
            return await _control!.RegisterAsync(BuildRegisterRequest(identity.PublicKey, hostname, registered ? null : authKey), cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (authKey is not null && registered
            && e.Trailers.GetValue(ControlErrors.TrailerKey) is ControlErrors.NodeNotRegistered or ControlErrors.AuthKeyRequired)
        {
            // The service no longer knows the saved registration: join again with the auth key.
            return await _control!.RegisterAsync(BuildRegisterRequest(identity.PublicKey, hostname, authKey), cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (authKey is not null && e.Trailers.GetValue(ControlErrors.TrailerKey) == ControlErrors.NodeKeyExpired)
        {
            return await RotateKeyAsync(hostname, authKey, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Registers a new key in place of the expired one: the request is signed with the new key
    /// and carries a proof, made with the old key, that the same holder hands over.
    /// </summary>
    private async Task<RegisterResponse> RotateKeyAsync(string hostname, string authKey, CancellationToken cancellationToken)
    {
        var oldSigner = _signer!;
        var newKey = WireGuardPrivateKey.Generate();
        ControlSigner? newSigner = null;
        try
        {
            newSigner = ControlSigner.Create(newKey, _serverKey, _time)
                ?? throw new MeshException(MeshErrorCode.ControlRejected, "The coordination service's key is not a valid X25519 key.");
            var request = BuildRegisterRequest(newKey.PublicKey, hostname, authKey);
            request.OldNodeKey = ByteString.CopyFrom(_identity!.PublicKey.AsSpan());
            request.OldNodeKeyProof = ByteString.CopyFrom(oldSigner.CreateRotationProof(newKey.PublicKey));
            _control!.Signer = newSigner;
            var response = await _control.RegisterAsync(request, cancellationToken).ConfigureAwait(false);

            var old = _identity;
            _identity = new MeshNodeIdentity(newKey)
            {
                NodeId = old.NodeId,
                Tailnet = old.Tailnet,
                Addresses = old.Addresses,
                ControlUrl = old.ControlUrl,
            };
            newKey = null;
            _signer = newSigner;
            newSigner = null;
            lock (_retiredSigners)
            {
                _retiredSigners.Add(oldSigner);
            }
            _dataPlane!.Device.SetPrivateKey(_identity.PrivateKey);
            MeshLog.KeyRotated(_logger, old.PublicKey.ToShortString(), _identity.PublicKey.ToShortString());
            old.Dispose();
            return response;
        }
        finally
        {
            if (newSigner is not null)
            {
                _control!.Signer = oldSigner;
                newSigner.Dispose();
            }
            newKey?.Dispose();
        }
    }

    private RegisterRequest BuildRegisterRequest(WireGuardPublicKey nodeKey, string hostname, string? authKey)
    {
        var request = new RegisterRequest
        {
            NodeKey = ByteString.CopyFrom(nodeKey.AsSpan()),
            Hostname = hostname,
            Ephemeral = _options.Ephemeral,
            AuthKey = authKey ?? "",
        };
        request.RequestedTags.Add(_options.Tags);
        return request;
    }

    /// <summary>Gets the server key and derives the proof key (again, when <paramref name="refresh"/>).</summary>
    private async Task EnsureSignerAsync(bool refresh, CancellationToken cancellationToken)
    {
        if (_signer is not null && !refresh)
        {
            return;
        }
        var info = await _control!.GetServerInfoAsync(cancellationToken).ConfigureAwait(false);
        MeshLog.ServerInfo(_logger, _controlUrl, info.ServerVersion, info.ProtocolVersion);
        if (info.ProtocolVersion < 1)
        {
            throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} does not speak protocol version 1.");
        }
        var signer = ControlSigner.Create(_identity!.PrivateKey, info.ServerKey.Span, _time)
            ?? throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} sent a server key that is not a valid X25519 key.");
        _serverKey = info.ServerKey.ToByteArray();
        if (_signer is not null)
        {
            // Another task may be signing with it right now: zeroed when the node is disposed.
            lock (_retiredSigners)
            {
                _retiredSigners.Add(_signer);
            }
        }
        _signer = signer;
        _control.Signer = signer;
    }

    /// <summary>Takes the registration in: the node's record, addresses, tailnet; saves the identity.</summary>
    private async Task ApplyRegistrationAsync(RegisterResponse registration, CancellationToken cancellationToken)
    {
        if (registration.Self is null)
        {
            throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} answered the registration without the node's record.");
        }
        var self = NetmapNode.FromProto(registration.Self);
        if (self.Addresses.IsEmpty)
        {
            throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} gave the node no addresses.");
        }
        _registeredSelf = self;
        _tailnet = registration.Tailnet;
        _addresses = NameResolver.OrderedAddresses(self);
        var identity = _identity!;
        identity.NodeId = self.Id;
        identity.Tailnet = registration.Tailnet;
        identity.Addresses = _addresses;
        identity.ControlUrl = _controlUrl;
        await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
        MeshLog.Registered(_logger, self.Name, self.Id, registration.Tailnet, string.Join(", ", _addresses));
    }

    private void StartControlLoops()
    {
        var bind = _options.BindAddress;
        ushort port = _dataPlane!.Device.ListenPort;
        var initial = _options.AdvertisedEndpoints ?? LocalEndpoints.Discover(bind, port);
        Func<IReadOnlyList<IPEndPoint>>? discover = _options.AdvertisedEndpoints is null ? () => LocalEndpoints.Discover(bind, port) : null;
        byte[] nodeKey = _identity!.PublicKey.AsSpan().ToArray();
        _endpoints = new EndpointReporter(_control!, initial, discover, () => nodeKey, _backoff,
            _options.EndpointRefreshInterval, _time, _logger);
        _mapLoop = new MapStreamLoop(_control!, () =>
        {
            var request = new MapRequest { NodeKey = ByteString.CopyFrom(nodeKey) };
            request.Endpoints.Add(LocalEndpoints.Format(_endpoints.Current));
            return request;
        }, OnNetmap, RecoverAsync, _backoff, _options.ControlKeepAliveTimeout, _time, _logger);
        var stop = _stopping.Token;
        _mapTask = _mapLoop.RunAsync(stop);
        _endpointTask = _endpoints.RunAsync(stop);
    }

    /// <summary>After a failed map stream: a rejected proof may mean a new server key.</summary>
    private async Task RecoverAsync(ControlFailure failure, CancellationToken cancellationToken)
    {
        if (MapStreamLoop.NeedsNewServerKey(failure))
        {
            MeshLog.RefetchingServerKey(_logger);
            await EnsureSignerAsync(refresh: true, cancellationToken).ConfigureAwait(false);
        }
    }

    private static bool UrlEquals(Uri a, Uri b) => Uri.Compare(a, b, UriComponents.SchemeAndServer | UriComponents.Path,
        UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
