using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>Registration, the server key, and key rotation.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// Fetches the server key (once), then registers: a new node with its auth key, a known node
    /// without it (and with it again if the service has forgotten the node), and a node whose
    /// key expired by re-authenticating: a new key with the configured auth key.
    /// </summary>
    private async Task<RegisterResponse> RegisterAsync(CancellationToken cancellationToken)
    {
        await EnsureSignerAsync(refresh: false, cancellationToken).ConfigureAwait(false);
        var identity = _identity!;
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
        var old = _identity!;
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
            lock (_retiredSigners)
            {
                // Another task may still be signing with it: zeroed when the node is disposed.
                _retiredSigners.Add(oldSigner);
            }
            _dataPlane?.Device.SetPrivateKey(rotated.PrivateKey);
            MeshLog.KeyRotated(_logger, old.PublicKey.ToShortString(), rotated.PublicKey.ToShortString());
            old.Dispose();
            await SaveIdentityAsync(cancellationToken).ConfigureAwait(false);
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
        var signer = ControlSigner.Create(_identity!.PrivateKey, info.ServerKey.Span, _time)
            ?? throw new MeshException(MeshErrorCode.ControlRejected, $"The coordination service at {_controlUrl} sent a server key that is not a valid X25519 key.");
        _serverKey = info.ServerKey.ToByteArray();
        if (_signer is { } previous)
        {
            lock (_retiredSigners)
            {
                _retiredSigners.Add(previous);
            }
        }
        _signer = signer;
        _control.Signer = signer;
    }

    /// <summary>
    /// Takes the registration in: the node's record, addresses, tailnet; saves the identity. With
    /// <paramref name="keepAddresses"/> (the stack already runs on the cached addresses) the
    /// node keeps its addresses, and a failed save is logged rather than thrown.
    /// </summary>
    private async Task ApplyRegistrationAsync(RegisterResponse registration, bool keepAddresses, CancellationToken cancellationToken)
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
        _control!.Tailnet = registration.Tailnet;
        var addresses = NameResolver.OrderedAddresses(self);
        if (!keepAddresses)
        {
            _addresses = addresses;
        }
        var identity = _identity!;
        identity.NodeId = self.Id;
        identity.Tailnet = registration.Tailnet;
        identity.Addresses = addresses;
        identity.ControlUrl = _controlUrl;
        try
        {
            await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e) when (keepAddresses)
        {
            MeshLog.IdentityUpdateNotSaved(_logger, e.Message);
        }
        MeshLog.Registered(_logger, self.Name, self.Id, registration.Tailnet, string.Join(", ", addresses));
    }

    /// <summary>
    /// Saves the identity after a rotation. While starting, a failure fails the start; once the
    /// node runs (its map stream exists, or it has a netmap: a start from the cache registers in
    /// the background; either way the device already uses the new key) it is
    /// logged and the node keeps running.
    /// </summary>
    private async Task SaveIdentityAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _options.StateStore!.SaveAsync(_identity!, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e) when (_mapLoop is not null || _netmap is not null)
        {
            MeshLog.IdentitySaveFailed(_logger, e.Message);
        }
    }

    /// <summary>
    /// After a failed map stream, before the next attempt: an expired key is replaced with the
    /// configured auth key (the service's only way back in; without an auth key the failure
    /// stays, and <see cref="GetStatus"/> reports <see cref="MeshErrorCode.NodeKeyExpired"/>), a
    /// rejected proof may mean a new server key.
    /// </summary>
    private async Task<bool> RecoverAsync(ControlFailure failure, CancellationToken cancellationToken)
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
}
