using System.Buffers.Binary;
using System.Security.Cryptography;
using MeshNet.Userspace.Crypto;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// WireGuard's handshake messages on top of <see cref="NoiseIkPsk2"/>: framing with type and
/// indices, the TAI64N timestamp with its replay and flood checks, index allocation, and
/// session derivation with key rotation (wireguard-go noise-protocol.go). MACs are added and
/// checked by the cookie classes, not here.
/// </summary>
/// <remarks>
/// Thread-safe: each operation takes the lock of the handshake it changes (the peer's
/// <see cref="Peer.Handshake"/>, or its <see cref="Peer.CrossedInitiation"/> for a response to
/// an initiation set aside); setting an initiation aside takes both, the handshake's first.
/// Operations on a peer that is no longer running change nothing. Consume operations change a
/// handshake only when the message fully authenticates.
/// </remarks>
internal sealed class HandshakeProtocol(DeviceContext device, Func<WireGuardPublicKey, Peer?> lookupPeer)
{
    private const int TimestampSize = Tai64N.Size;

    /// <summary>Writes an initiation to <paramref name="peer"/> (MAC fields left zero).</summary>
    public bool CreateInitiation(Peer peer, Span<byte> message)
    {
        var identity = device.Identity;
        var handshake = peer.Handshake;
        lock (handshake.Sync)
        {
            if (!peer.IsRunning)
            {
                return false; // removed meanwhile: its handshake was zeroed and must stay so (no index, no ephemeral key)
            }
            message.Clear();
            handshake.Noise.InitializePrecomputed(NoiseHash.InitialChainingKey, NoiseHash.InitialHash);
            handshake.LocalEphemeral?.Dispose();
            handshake.LocalEphemeral = device.EphemeralKeyFactory();

            Span<byte> timestamp = stackalloc byte[TimestampSize];
            Tai64N.Write(device.Time.GetUtcNow(), timestamp);
            if (!NoiseIkPsk2.WriteMessage1(handshake.Noise, handshake.RemoteStatic, handshake.LocalEphemeral,
                identity.PublicKey.AsSpan(), handshake.StaticStatic(identity), timestamp,
                message.Slice(WireGuardProtocol.InitiationNoiseOffset, WireGuardProtocol.InitiationNoiseSize)))
            {
                device.Indices.Delete(handshake.LocalIndex);
                handshake.Clear();
                return false;
            }

            device.Indices.Delete(handshake.LocalIndex);
            handshake.LocalIndex = device.Indices.NewIndexForHandshake(peer, handshake);
            peer.ClearCrossedInitiation(); // superseded by this one
            BinaryPrimitives.WriteUInt32LittleEndian(message, WireGuardProtocol.MessageInitiation);
            BinaryPrimitives.WriteUInt32LittleEndian(message[WireGuardProtocol.InitiationSenderOffset..], handshake.LocalIndex);
            handshake.Stage = HandshakeStage.InitiationCreated;
            return true;
        }
    }

    /// <summary>
    /// Authenticates an initiation (MACs already checked) and records it in the sending peer's
    /// handshake. Returns the peer, or null with the reason.
    /// </summary>
    public Peer? ConsumeInitiation(ReadOnlySpan<byte> message, out WireGuardDropReason reason)
    {
        var identity = device.Identity;
        var noiseMessage = message.Slice(WireGuardProtocol.InitiationNoiseOffset, WireGuardProtocol.InitiationNoiseSize);
        using var state = new NoiseSymmetricState();
        state.InitializePrecomputed(NoiseHash.InitialChainingKey, NoiseHash.InitialHash);

        Span<byte> remoteStatic = stackalloc byte[WireGuardPublicKey.Size];
        if (!NoiseIkPsk2.ReadMessage1Static(state, identity.Key, identity.PublicKey.AsSpan(), noiseMessage, remoteStatic))
        {
            reason = WireGuardDropReason.HandshakeFailed;
            return null;
        }
        var peer = lookupPeer(WireGuardPublicKey.FromBytes(remoteStatic));
        if (peer is null || !peer.IsRunning)
        {
            reason = WireGuardDropReason.UnknownPeer;
            return null;
        }

        var handshake = peer.Handshake;
        Span<byte> timestamp = stackalloc byte[TimestampSize];
        lock (handshake.Sync)
        {
            if (!peer.IsRunning)
            {
                reason = WireGuardDropReason.UnknownPeer; // removed while the message was being read
                return null;
            }
            if (!NoiseIkPsk2.ReadMessage1Payload(state, handshake.StaticStatic(identity), noiseMessage, timestamp))
            {
                reason = WireGuardDropReason.HandshakeFailed;
                return null;
            }
            if (!Tai64N.IsAfter(timestamp, handshake.LastTimestamp))
            {
                reason = WireGuardDropReason.ReplayedInitiation;
                return null;
            }
            long now = device.Now();
            if (handshake.LastInitiationConsumption is long last &&
                !device.IsOlderThan(last, WireGuardProtocol.HandshakeInitiationRate, now))
            {
                reason = WireGuardDropReason.InitiationFlood;
                return null;
            }

            if (handshake.Stage == HandshakeStage.InitiationCreated && handshake.LocalEphemeral is not null)
            {
                SetCrossedInitiationAside(peer);
            }
            handshake.Noise.CopyFrom(state);
            handshake.RemoteIndex = BinaryPrimitives.ReadUInt32LittleEndian(message[WireGuardProtocol.InitiationSenderOffset..]);
            noiseMessage[..NoiseSymmetricState.PublicKeySize].CopyTo(handshake.RemoteEphemeral);
            timestamp.CopyTo(handshake.LastTimestamp);
            handshake.LastInitiationConsumption = now;
            handshake.Stage = HandshakeStage.InitiationConsumed;
        }
        reason = default;
        return peer;
    }

    /// <summary>
    /// The peer's initiation crossed ours (both sides started at once): ours moves to
    /// <see cref="Peer.CrossedInitiation"/>, where the peer's response to it still completes a
    /// session, while the handshake answers theirs. Without this both sides would drop the
    /// response to their own initiation (each had moved on to answering the other's) and wait
    /// out RekeyTimeout, as wireguard-go and Linux do. Caller holds the peer's handshake lock.
    /// </summary>
    private void SetCrossedInitiationAside(Peer peer)
    {
        var crossed = peer.CrossedInitiation;
        lock (crossed.Sync)
        {
            peer.ClearCrossedInitiation(); // an older one set aside is superseded
            peer.Handshake.MoveInitiationTo(crossed);
            device.Indices.RepointHandshake(crossed.LocalIndex, peer, crossed);
        }
        device.Counters.CrossedHandshake();
    }

    /// <summary>Writes the response to a consumed initiation (MAC fields left zero).</summary>
    public bool CreateResponse(Peer peer, Span<byte> message)
    {
        var handshake = peer.Handshake;
        lock (handshake.Sync)
        {
            if (handshake.Stage != HandshakeStage.InitiationConsumed || !peer.IsRunning)
            {
                return false;
            }
            message.Clear();
            device.Indices.Delete(handshake.LocalIndex);
            handshake.LocalIndex = device.Indices.NewIndexForHandshake(peer, handshake);
            handshake.LocalEphemeral?.Dispose();
            handshake.LocalEphemeral = device.EphemeralKeyFactory();

            if (!NoiseIkPsk2.WriteMessage2(handshake.Noise, handshake.LocalEphemeral, handshake.RemoteEphemeral,
                handshake.RemoteStatic, handshake.PresharedKey, ReadOnlySpan<byte>.Empty,
                message.Slice(WireGuardProtocol.ResponseNoiseOffset, WireGuardProtocol.ResponseNoiseSize)))
            {
                device.Indices.Delete(handshake.LocalIndex);
                handshake.Clear();
                return false;
            }
            BinaryPrimitives.WriteUInt32LittleEndian(message, WireGuardProtocol.MessageResponse);
            BinaryPrimitives.WriteUInt32LittleEndian(message[WireGuardProtocol.ResponseSenderOffset..], handshake.LocalIndex);
            BinaryPrimitives.WriteUInt32LittleEndian(message[WireGuardProtocol.ResponseReceiverOffset..], handshake.RemoteIndex);
            handshake.Stage = HandshakeStage.ResponseCreated;
            return true;
        }
    }

    /// <summary>
    /// Authenticates a response to one of our initiations (MACs already checked). Returns the
    /// peer and the handshake it completed (the peer's <see cref="Peer.Handshake"/>, or its
    /// <see cref="Peer.CrossedInitiation"/>), or null with the reason.
    /// </summary>
    public Peer? ConsumeResponse(ReadOnlySpan<byte> message, out Handshake? completed, out WireGuardDropReason reason)
    {
        completed = null;
        uint receiver = BinaryPrimitives.ReadUInt32LittleEndian(message[WireGuardProtocol.ResponseReceiverOffset..]);
        if (!device.Indices.TryLookup(receiver, out var entry) || entry.Handshake is null)
        {
            reason = WireGuardDropReason.UnexpectedResponse;
            return null;
        }
        var peer = entry.Peer;
        var handshake = entry.Handshake;
        var identity = device.Identity;
        using var state = new NoiseSymmetricState();
        lock (handshake.Sync)
        {
            if (handshake.Stage != HandshakeStage.InitiationCreated || handshake.LocalEphemeral is null)
            {
                reason = WireGuardDropReason.UnexpectedResponse;
                return null;
            }
            state.CopyFrom(handshake.Noise);
            if (!NoiseIkPsk2.ReadMessage2(state, handshake.LocalEphemeral, identity.Key, handshake.PresharedKey,
                message.Slice(WireGuardProtocol.ResponseNoiseOffset, WireGuardProtocol.ResponseNoiseSize), Span<byte>.Empty))
            {
                reason = WireGuardDropReason.HandshakeFailed;
                return null;
            }
            handshake.Noise.CopyFrom(state);
            handshake.RemoteIndex = BinaryPrimitives.ReadUInt32LittleEndian(message[WireGuardProtocol.ResponseSenderOffset..]);
            handshake.Stage = HandshakeStage.ResponseConsumed;
        }
        completed = handshake;
        reason = default;
        return peer;
    }

    /// <summary>
    /// Derives the transport keys from a finished handshake (response consumed: initiator;
    /// response created: responder), zeroes the handshake, re-points its index at the new
    /// keypair and installs the keypair in the peer's slots. <paramref name="handshake"/> is the
    /// peer's <see cref="Peer.Handshake"/> (the default) or its <see cref="Peer.CrossedInitiation"/>.
    /// </summary>
    public bool BeginSymmetricSession(Peer peer, Handshake? handshake = null)
    {
        handshake ??= peer.Handshake;
        Keypair keypair;
        Span<byte> sendKey = stackalloc byte[NoiseSymmetricState.KeySize];
        Span<byte> receiveKey = stackalloc byte[NoiseSymmetricState.KeySize];
        try
        {
            lock (handshake.Sync)
            {
                bool initiator;
                if (handshake.Stage == HandshakeStage.ResponseConsumed)
                {
                    initiator = true;
                }
                else if (handshake.Stage == HandshakeStage.ResponseCreated)
                {
                    initiator = false;
                }
                else
                {
                    return false;
                }
                NoiseIkPsk2.Split(handshake.Noise, initiator, sendKey, receiveKey);
                keypair = new Keypair(peer, sendKey, receiveKey, initiator, device.Now(), handshake.LocalIndex, handshake.RemoteIndex);
                device.Indices.SwapIndexForKeypair(handshake.LocalIndex, keypair);
                uint remoteIndex = handshake.RemoteIndex;
                handshake.Clear();
                handshake.RemoteIndex = remoteIndex;
                if (!ReferenceEquals(handshake, peer.Handshake))
                {
                    CryptographicOperations.ZeroMemory(handshake.PresharedKey); // the crossed initiation's copy
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sendKey);
            CryptographicOperations.ZeroMemory(receiveKey);
        }
        peer.InstallKeypair(keypair);
        device.Counters.SessionEstablished();
        return true;
    }
}
