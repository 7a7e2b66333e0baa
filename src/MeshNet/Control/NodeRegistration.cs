using System.Net;
using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;
using Microsoft.Extensions.Logging;

namespace MeshNet.Control;

/// <summary>
/// A node's identity and its standing with the coordination service: loads (or creates) and
/// saves the identity through the node's <see cref="IMeshStateStore"/>, opens the control
/// connection, fetches the server key and derives the proof signer from it, registers
/// (re-authenticating an expired key with the configured auth key), rotates the node key, and
/// remembers what registration said: the node's record (<see cref="Self"/>) and its
/// <see cref="Tailnet"/>.
/// </summary>
/// <remarks>
/// <para><b>Thread safety</b>: set up on the start path (<see cref="LoadIdentityAsync"/>,
/// <see cref="OpenControl"/>); afterwards registration runs on the start path or on the node's
/// background connect task, and recovery (<see cref="RecoverAsync"/>) on the map loop's task.
/// The identity and the signer are replaced by a key rotation; rotations never overlap
/// (<c>_rotation</c>), and the properties may be read from any thread.</para>
/// <para><b>Ownership</b>: owns the identity, every signer it created (the current one, and
/// those a rotation or a new server key retired, which another task may still be using), the
/// control connection, and the <see cref="InMemoryStateStore"/> it creates when the options
/// name no store.</para>
/// <para><b>Disposal</b>: <see cref="Dispose"/> closes the control connection, then zeroes every
/// signer and the identity's key; call it once the tasks that use them have ended. Nothing may
/// be called after it.</para>
/// </remarks>
internal sealed class NodeRegistration : IDisposable
{
    private readonly MeshNodeOptions _options;
    private readonly Uri _controlUrl;
    private readonly string _hostname;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<WireGuardPrivateKey> _keyRotated;
    private readonly Func<bool> _running;
    private readonly List<ControlSigner> _retiredSigners = []; // guarded by itself
    private readonly SemaphoreSlim _rotation = new(1, 1);

    private volatile MeshNodeIdentity? _identity;
    private volatile ControlSigner? _signer;
    private volatile byte[] _serverKey = [];
    private volatile NetmapNode? _self;
    private volatile string _tailnet = "";
    private ControlClient? _control; // set once, on the start path
    private InMemoryStateStore? _ownedStore;

    /// <param name="options">The node's settings (a private copy: when it names no state store, one is set here).</param>
    /// <param name="hostname">The host name to register with.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The node's log.</param>
    /// <param name="keyRotated">Told the new private key after a rotation (the WireGuard device moves to it).</param>
    /// <param name="running">
    /// Whether the node runs (its map stream exists, or it has a netmap): from then on a failure
    /// to save the identity after a rotation is logged instead of thrown.
    /// </param>
    public NodeRegistration(MeshNodeOptions options, string hostname, TimeProvider time, ILogger logger,
        Action<WireGuardPrivateKey> keyRotated, Func<bool> running)
    {
        _options = options;
        _controlUrl = options.ControlUrl!;
        _hostname = hostname;
        _time = time;
        _logger = logger;
        _keyRotated = keyRotated;
        _running = running;
    }

    /// <summary>The node's current identity (a key rotation replaces it).</summary>
    /// <exception cref="InvalidOperationException">No identity has been loaded yet.</exception>
    public MeshNodeIdentity Identity => _identity ?? throw new InvalidOperationException("The node has no identity yet.");

    /// <summary>The control connection; null until <see cref="OpenControl"/> (a node without control has none).</summary>
    public ControlClient? Control => _control;

    /// <summary>The node's record as registration (or the cache) gave it; null before.</summary>
    public NetmapNode? Self => _self;

    /// <summary>The tailnet the node belongs to; empty before registration (or a start from the cache).</summary>
    public string Tailnet => _tailnet;

    /// <summary>
    /// Loads the identity from the state store (an <see cref="InMemoryStateStore"/> of its own
    /// when none is configured), or creates and saves a new one. A registration with a control
    /// URL that is no longer configured is forgotten.
    /// </summary>
    public async Task LoadIdentityAsync(CancellationToken cancellationToken)
    {
        var store = _options.StateStore;
        if (store is null)
        {
            _ownedStore = new InMemoryStateStore();
            store = _options.StateStore = _ownedStore;
        }
        var identity = await store.LoadAsync(cancellationToken).ConfigureAwait(false);
        _identity = identity;
        if (identity is null)
        {
            identity = MeshNodeIdentity.Generate();
            _identity = identity;
            // Saved before the service hears of the key: a node that registers and then crashes
            // comes back as the same node instead of orphaning a registration.
            await store.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
            MeshLog.IdentityCreated(_logger, identity.PublicKey.ToShortString());
            return;
        }
        MeshLog.IdentityLoaded(_logger, identity.PublicKey.ToShortString(), identity.NodeId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unregistered");
        if (identity.IsRegistered && !UrlEquals(identity.ControlUrl!, _controlUrl) && !_options.ControlUrls.Any(url => UrlEquals(identity.ControlUrl!, url)))
        {
            MeshLog.ControlUrlChanged(_logger, identity.ControlUrl, _controlUrl);
            identity.NodeId = null;
            identity.Tailnet = null;
            identity.Addresses = [];
            identity.ControlUrl = null;
        }
    }

    /// <summary>Test hook: takes over <paramref name="identity"/> instead of loading one.</summary>
    public void TakeIdentity(MeshNodeIdentity identity) => _identity = identity;

    /// <summary>Takes a record and tailnet known without registering: the cached netmap's, or a test's.</summary>
    public void Adopt(NetmapNode self, string tailnet)
    {
        _self = self;
        _tailnet = tailnet;
    }

    /// <summary>Remembers the WireGuard port in the identity, for the next run; a failed save is logged.</summary>
    public async Task RememberListenPortAsync(int port, CancellationToken cancellationToken)
    {
        var identity = Identity;
        identity.ListenPort = port;
        try
        {
            await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e)
        {
            MeshLog.IdentityUpdateNotSaved(_logger, e.Message);
        }
    }

    /// <summary>Creates the control connection to the configured servers (no call yet; a bad handler configuration throws now).</summary>
    public ControlClient OpenControl()
    {
        _control = new ControlClient([_controlUrl, .. _options.ControlUrls], _options.ConfigureControlHandler, _options.LoggerFactory)
        {
            Tailnet = Identity.Tailnet,
        };
        return _control;
    }

    /// <summary>
    /// Fetches the server key (once), then registers: a new node with its auth key, a known node
    /// without it (and with it again if the service has forgotten the node), and a node whose
    /// key expired by re-authenticating: a new key with the configured auth key.
    /// </summary>
    public async Task<RegisterResponse> RegisterAsync(CancellationToken cancellationToken)
    {
        await EnsureSignerAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        var identity = Identity;
        string? authKey = _options.AuthKey;
        bool registered = identity.IsRegistered;
        try
        {
            return await _control!.RegisterAsync(BuildRegisterRequest(identity.PublicKey, registered ? null : authKey), cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (authKey is not null && registered
            && e.Trailers.GetValue(ControlErrors.TrailerKey) is ControlErrors.NodeNotRegistered or ControlErrors.AuthKeyRequired)
        {
            // The service no longer knows the saved registration: join again with the auth key.
            return await _control!.RegisterAsync(BuildRegisterRequest(identity.PublicKey, authKey), cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.Trailers.GetValue(ControlErrors.TrailerKey) == ControlErrors.NodeKeyExpired)
        {
            return await ReauthenticateAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Takes the registration in: the node's record, tailnet, addresses; saves the identity.
    /// <paramref name="inBackground"/> (the node already runs, on the cached netmap): a failed
    /// save is logged rather than thrown.
    /// </summary>
    /// <returns>The node's addresses, IPv4 first.</returns>
    public async Task<IReadOnlyList<IPAddress>> ApplyAsync(RegisterResponse registration, bool inBackground, CancellationToken cancellationToken)
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
        Adopt(self, registration.Tailnet);
        _control!.Tailnet = registration.Tailnet;
        var addresses = NameResolver.OrderedAddresses(self);
        var identity = Identity;
        identity.NodeId = self.Id;
        identity.Tailnet = registration.Tailnet;
        identity.Addresses = addresses;
        identity.ControlUrl = _controlUrl;
        try
        {
            await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e) when (inBackground)
        {
            MeshLog.IdentityUpdateNotSaved(_logger, e.Message);
        }
        MeshLog.Registered(_logger, self.Name, self.Id, registration.Tailnet, string.Join(", ", addresses));
        return addresses;
    }

    /// <summary>
    /// After a failed map stream, before the next attempt (the map loop's recovery hook): an
    /// expired key is replaced with the configured auth key (the service's only way back in;
    /// without an auth key the failure stays, and the node's status reports
    /// <see cref="MeshErrorCode.NodeKeyExpired"/>), a rejected proof may mean a new server key.
    /// </summary>
    /// <returns>True when it acted on the cause, so that the next attempt may succeed.</returns>
    public async Task<bool> RecoverAsync(ControlFailure failure, CancellationToken cancellationToken)
    {
        if (failure.Reason == ControlErrors.NodeKeyExpired)
        {
            if (_options.AuthKey is null)
            {
                MeshLog.KeyExpiredWithoutAuthKey(_logger);
                return false;
            }
            await EnsureSignerAsync(refresh: false, cancellationToken).ConfigureAwait(false);
            await ReauthenticateAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        if (MapStreamLoop.NeedsNewServerKey(failure))
        {
            MeshLog.RefetchingServerKey(_logger);
            var before = _serverKey;
            await EnsureSignerAsync(refresh: true, cancellationToken).ConfigureAwait(false);
            return !before.AsSpan().SequenceEqual(_serverKey); // the same key again: the proof was not the problem
        }
        return false;
    }

    /// <summary>
    /// The node's key expired (its lifetime ended, or an administrator expired it): the old key's
    /// proof no longer suffices, so the node registers a new key with its configured auth key.
    /// Without one it cannot come back: <see cref="MeshErrorCode.NodeKeyExpired"/>.
    /// </summary>
    private async Task<RegisterResponse> ReauthenticateAsync(CancellationToken cancellationToken)
    {
        if (_options.AuthKey is null)
        {
            throw new MeshException(MeshErrorCode.NodeKeyExpired,
                $"The node's key has expired (its lifetime ended, or an administrator expired it), and the coordination service at {_controlUrl} " +
                "accepts an expired key back only with a valid auth key: set MeshNodeOptions.AuthKey to re-authenticate the node.");
        }
        MeshLog.Reauthenticating(_logger);
        try
        {
            return await RotateKeyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            var failure = ControlFailure.Classify(e, "Re-authentication", _controlUrl);
            if (failure.Transient)
            {
                throw;
            }
            throw new MeshException(failure.Code,
                $"The node's key has expired and re-authenticating with MeshNodeOptions.AuthKey failed: {failure.Message}", e);
        }
    }

    /// <summary>
    /// Replaces the node key: registers a new key with a proof, made with the old key, that the
    /// same holder hands over, and the configured auth key (which the service needs when the old
    /// key has expired, or should it have forgotten the old key), then moves the WireGuard device,
    /// the control signer and the saved identity to the new key. Peers learn the new key from
    /// their netmaps. Runs on the start path, on the map loop's task after the service ended the
    /// stream with <c>node-key-expired</c>, or on the renewal task shortly before the key expires;
    /// rotations never overlap.
    /// </summary>
    private async Task<RegisterResponse> RotateKeyAsync(CancellationToken cancellationToken)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await RotateKeyCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _rotation.Release();
        }
    }

    private async Task<RegisterResponse> RotateKeyCoreAsync(CancellationToken cancellationToken)
    {
        var oldSigner = _signer!;
        var old = Identity;
        var newKey = WireGuardPrivateKey.Generate();
        ControlSigner? newSigner = null;
        try
        {
            newSigner = ControlSigner.Create(newKey, _serverKey, _time)
                ?? throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} sent a server key that is not a valid X25519 key.");
            var request = BuildRegisterRequest(newKey.PublicKey, _options.AuthKey);
            request.OldNodeKey = ByteString.CopyFrom(old.PublicKey.AsSpan());
            request.OldNodeKeyProof = ByteString.CopyFrom(oldSigner.CreateRotationProof(newKey.PublicKey));
            _control!.Signer = newSigner;
            var response = await _control.RegisterAsync(request, cancellationToken).ConfigureAwait(false);

            var rotated = new MeshNodeIdentity(newKey)
            {
                NodeId = old.NodeId,
                Tailnet = old.Tailnet,
                Addresses = old.Addresses,
                ControlUrl = old.ControlUrl,
                ListenPort = old.ListenPort,
            };
            newKey = null;
            _signer = newSigner;
            newSigner = null;
            _identity = rotated;
            Retire(oldSigner); // another task may still be signing with it
            _keyRotated(rotated.PrivateKey);
            MeshLog.KeyRotated(_logger, old.PublicKey.ToShortString(), rotated.PublicKey.ToShortString());
            old.Dispose();
            await SaveRotatedIdentityAsync(rotated, cancellationToken).ConfigureAwait(false);
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

    private RegisterRequest BuildRegisterRequest(WireGuardPublicKey nodeKey, string? authKey)
    {
        var request = new RegisterRequest
        {
            NodeKey = ByteString.CopyFrom(nodeKey.AsSpan()),
            Hostname = _hostname,
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
        var signer = ControlSigner.Create(Identity.PrivateKey, info.ServerKey.Span, _time)
            ?? throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} sent a server key that is not a valid X25519 key.");
        _serverKey = info.ServerKey.ToByteArray();
        if (_signer is { } previous)
        {
            Retire(previous);
        }
        _signer = signer;
        _control.Signer = signer;
    }

    /// <summary>Keeps a replaced signer until disposal: another task may still be signing with it.</summary>
    private void Retire(ControlSigner signer)
    {
        lock (_retiredSigners)
        {
            _retiredSigners.Add(signer);
        }
    }

    /// <summary>
    /// Saves the identity after a rotation. While starting, a failure fails the start; once the
    /// node runs (its map stream exists, or it has a netmap: a start from the cache registers in
    /// the background; either way the device already uses the new key) it is logged and the node
    /// keeps running.
    /// </summary>
    private async Task SaveRotatedIdentityAsync(MeshNodeIdentity identity, CancellationToken cancellationToken)
    {
        try
        {
            await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e) when (_running())
        {
            MeshLog.IdentitySaveFailed(_logger, e.Message);
        }
    }

    private static bool UrlEquals(Uri a, Uri b) => Uri.Compare(a, b, UriComponents.SchemeAndServer | UriComponents.Path,
        UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    /// <summary>Closes the control connection, then zeroes every signer and the identity (see the class remarks).</summary>
    public void Dispose()
    {
        try
        {
            _control?.Dispose();
        }
        finally
        {
            _signer?.Dispose();
            lock (_retiredSigners)
            {
                foreach (var signer in _retiredSigners)
                {
                    signer.Dispose();
                }
            }
            _identity?.Dispose();
            _ownedStore?.Dispose();
            _rotation.Dispose();
        }
    }
}
