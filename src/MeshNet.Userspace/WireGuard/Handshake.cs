using System.Security.Cryptography;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>Where a peer's handshake stands.</summary>
internal enum HandshakeStage
{
    Zeroed,
    InitiationCreated,
    InitiationConsumed,
    ResponseCreated,
    ResponseConsumed,
}

/// <summary>
/// A peer's handshake state: the Noise transcript, our ephemeral key, the peer's ephemeral
/// key and indices, the pre-shared key, the static-static DH (computed at the first handshake,
/// not when the peer is configured), and the replay and flood guards for initiations.
/// </summary>
/// <remarks>
/// Every member is guarded by <see cref="Sync"/>. Secrets sit in pinned arrays and are zeroed
/// by <see cref="Clear"/> (after a session is derived, or when key material expires) and
/// <see cref="Dispose"/>.
/// </remarks>
internal sealed class Handshake : IDisposable
{
    public const int KeySize = 32;

    /// <summary>The lock guarding this handshake.</summary>
    public object Sync { get; } = new();

    public HandshakeStage Stage { get; set; }

    /// <summary>The Noise symmetric state (ck, h).</summary>
    public NoiseSymmetricState Noise { get; } = new();

    /// <summary>Our ephemeral key for the handshake in flight (zeroed when disposed).</summary>
    public Key? LocalEphemeral { get; set; }

    /// <summary>The peer's ephemeral public key from its initiation.</summary>
    public byte[] RemoteEphemeral { get; } = new byte[KeySize];

    /// <summary>The peer's static public key.</summary>
    public byte[] RemoteStatic { get; } = new byte[KeySize];

    // DH(our static, peer static) for _staticStaticFor; computed at the first handshake that
    // needs it (not when the peer is configured, so that configuring thousands of peers costs no
    // X25519 at all), and again after our identity changed.
    private readonly byte[] _staticStatic = GC.AllocateArray<byte>(KeySize, pinned: true);
    private StaticIdentity? _staticStaticFor;

    /// <summary>
    /// DH(<paramref name="identity"/>'s static key, the peer's static key); all zero (unusable)
    /// for a low-order peer key. Computed on first use for each identity. Caller holds <see cref="Sync"/>.
    /// </summary>
    public byte[] StaticStatic(StaticIdentity identity)
    {
        if (!ReferenceEquals(_staticStaticFor, identity))
        {
            if (!NoiseSymmetricState.Dh(identity.Key, RemoteStatic, _staticStatic))
            {
                _staticStatic.AsSpan().Clear();
            }
            _staticStaticFor = identity;
        }
        return _staticStatic;
    }

    /// <summary>Forgets the static-static DH (our identity changed). Caller holds <see cref="Sync"/>.</summary>
    public void InvalidateStaticStatic()
    {
        _staticStaticFor = null;
        CryptographicOperations.ZeroMemory(_staticStatic);
    }

    /// <summary>The pre-shared key, or 32 zero bytes when none is configured.</summary>
    public byte[] PresharedKey { get; } = GC.AllocateArray<byte>(KeySize, pinned: true);

    /// <summary>The greatest TAI64N timestamp accepted from the peer (replay protection).</summary>
    public byte[] LastTimestamp { get; } = new byte[Crypto.Tai64N.Size];

    /// <summary>When we last consumed an initiation from the peer (flood protection), or null.</summary>
    public long? LastInitiationConsumption { get; set; }

    /// <summary>When we last sent an initiation or response, or null.</summary>
    public long? LastSentHandshake { get; set; }

    /// <summary>Our index for this handshake (0 when none).</summary>
    public uint LocalIndex { get; set; }

    /// <summary>The peer's sender index from its last handshake message.</summary>
    public uint RemoteIndex { get; set; }

    /// <summary>
    /// Moves our initiation in flight (<see cref="HandshakeStage.InitiationCreated"/>: the
    /// transcript, ephemeral key and local index) into <paramref name="target"/>, with the
    /// pre-shared key its response will need, leaving this handshake without it. The caller
    /// holds both locks, this one first, and re-points the index at <paramref name="target"/>.
    /// </summary>
    public void MoveInitiationTo(Handshake target)
    {
        target.Noise.CopyFrom(Noise);
        target.LocalEphemeral?.Dispose();
        target.LocalEphemeral = LocalEphemeral;
        target.LocalIndex = LocalIndex;
        PresharedKey.CopyTo(target.PresharedKey);
        target.Stage = HandshakeStage.InitiationCreated;
        LocalEphemeral = null;
        LocalIndex = 0;
        Noise.Clear();
        Stage = HandshakeStage.Zeroed;
    }

    /// <summary>
    /// Forgets the handshake in flight: zeroes the transcript and ephemeral key and returns to
    /// <see cref="HandshakeStage.Zeroed"/>. Keeps the replay/flood guards and configuration.
    /// The caller holds <see cref="Sync"/>.
    /// </summary>
    public void Clear()
    {
        Noise.Clear();
        LocalEphemeral?.Dispose();
        LocalEphemeral = null;
        CryptographicOperations.ZeroMemory(RemoteEphemeral);
        LocalIndex = 0;
        RemoteIndex = 0;
        Stage = HandshakeStage.Zeroed;
    }

    /// <summary>Zeroes every secret.</summary>
    public void Dispose()
    {
        lock (Sync)
        {
            Clear();
            Noise.Dispose();
            InvalidateStaticStatic();
            CryptographicOperations.ZeroMemory(PresharedKey);
        }
    }
}
