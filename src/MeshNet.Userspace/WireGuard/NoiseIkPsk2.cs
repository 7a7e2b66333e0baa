using System.Security.Cryptography;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The two handshake messages of Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, as Noise bytes
/// (without WireGuard's type, indices and MACs):
/// <code>
///   &lt;- s
///   ...
///   -> e, es, s, ss          message 1: e(32) | enc(s)(48) | enc(payload)(n+16)
///   &lt;- e, ee, se, psk       message 2: e(32) | enc(payload)(n+16)
/// </code>
/// WireGuard is this pattern with prologue = its identifier, payload 1 = a TAI64N timestamp
/// and payload 2 = empty. Keeping the Noise core separate lets the cacophony test vectors
/// exercise exactly the code the device runs.
/// </summary>
/// <remarks>
/// Every function works on a caller-owned <see cref="NoiseSymmetricState"/>; on failure the
/// state is left partly updated, so callers that must not change state on failure work on a
/// copy. Stateless and thread-safe otherwise.
/// </remarks>
internal static class NoiseIkPsk2
{
    public const int KeySize = NoiseSymmetricState.KeySize;
    public const int TagSize = NoiseSymmetricState.TagSize;

    /// <summary>Message 1 size for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public static int Message1Size(int payloadLength) => KeySize + KeySize + TagSize + payloadLength + TagSize;

    /// <summary>Message 2 size for a payload of <paramref name="payloadLength"/> bytes.</summary>
    public static int Message2Size(int payloadLength) => KeySize + payloadLength + TagSize;

    /// <summary>
    /// Initiator: writes message 1. <paramref name="state"/> must hold the initial (ck, h)
    /// (after the prologue); the responder's static key is mixed in here as the pre-message.
    /// <paramref name="staticStatic"/> is DH(local static, remote static), precomputed.
    /// </summary>
    /// <returns>False when a DH result is all zero (an invalid peer key).</returns>
    public static bool WriteMessage1(NoiseSymmetricState state, ReadOnlySpan<byte> remoteStatic,
        Key ephemeral, ReadOnlySpan<byte> localStaticPublic, ReadOnlySpan<byte> staticStatic,
        ReadOnlySpan<byte> payload, Span<byte> message)
    {
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            state.MixHash(remoteStatic);

            // e
            Span<byte> ephemeralPublic = message[..KeySize];
            if (!ephemeral.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, ephemeralPublic, out _))
            {
                return false;
            }
            state.MixHash(ephemeralPublic);
            state.MixChainingKey(ephemeralPublic);

            // es
            if (!state.MixDh(ephemeral, remoteStatic, key))
            {
                return false;
            }

            // s
            state.EncryptAndHash(key, localStaticPublic, message.Slice(KeySize, KeySize + TagSize));

            // ss
            if (IsZero(staticStatic))
            {
                return false;
            }
            state.MixKey(staticStatic, key);

            // payload
            state.EncryptAndHash(key, payload, message.Slice(KeySize + KeySize + TagSize, payload.Length + TagSize));
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Responder, first half of message 1: mixes our static key and the initiator's ephemeral
    /// key, and decrypts the initiator's static key into <paramref name="remoteStatic"/>. The
    /// caller then finds the peer and calls <see cref="ReadMessage1Payload"/>.
    /// </summary>
    public static bool ReadMessage1Static(NoiseSymmetricState state, Key localStatic, ReadOnlySpan<byte> localStaticPublic,
        ReadOnlySpan<byte> message, Span<byte> remoteStatic)
    {
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            state.MixHash(localStaticPublic);

            ReadOnlySpan<byte> remoteEphemeral = message[..KeySize];
            state.MixHash(remoteEphemeral);
            state.MixChainingKey(remoteEphemeral);

            if (!state.MixDh(localStatic, remoteEphemeral, key))
            {
                return false;
            }
            return state.DecryptAndHash(key, message.Slice(KeySize, KeySize + TagSize), remoteStatic);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Responder, second half of message 1: the <c>ss</c> token and the payload.
    /// </summary>
    public static bool ReadMessage1Payload(NoiseSymmetricState state, ReadOnlySpan<byte> staticStatic,
        ReadOnlySpan<byte> message, Span<byte> payload)
    {
        if (IsZero(staticStatic))
        {
            return false;
        }
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            state.MixKey(staticStatic, key);
            return state.DecryptAndHash(key, message[(KeySize + KeySize + TagSize)..], payload);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Responder: writes message 2.</summary>
    public static bool WriteMessage2(NoiseSymmetricState state, Key ephemeral, ReadOnlySpan<byte> remoteEphemeral,
        ReadOnlySpan<byte> remoteStatic, ReadOnlySpan<byte> presharedKey, ReadOnlySpan<byte> payload, Span<byte> message)
    {
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            // e
            Span<byte> ephemeralPublic = message[..KeySize];
            if (!ephemeral.PublicKey.TryExport(KeyBlobFormat.RawPublicKey, ephemeralPublic, out _))
            {
                return false;
            }
            state.MixHash(ephemeralPublic);
            state.MixChainingKey(ephemeralPublic);

            // ee, se
            if (!state.MixDh(ephemeral, remoteEphemeral, key) || !state.MixDh(ephemeral, remoteStatic, key))
            {
                return false;
            }

            // psk
            state.MixKeyAndHash(presharedKey, key);

            // payload
            state.EncryptAndHash(key, payload, message.Slice(KeySize, payload.Length + TagSize));
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Initiator: reads message 2 and authenticates the whole transcript.</summary>
    public static bool ReadMessage2(NoiseSymmetricState state, Key localEphemeral, Key localStatic,
        ReadOnlySpan<byte> presharedKey, ReadOnlySpan<byte> message, Span<byte> payload)
    {
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            ReadOnlySpan<byte> remoteEphemeral = message[..KeySize];
            state.MixHash(remoteEphemeral);
            state.MixChainingKey(remoteEphemeral);

            if (!state.MixDh(localEphemeral, remoteEphemeral, key) || !state.MixDh(localStatic, remoteEphemeral, key))
            {
                return false;
            }
            state.MixKeyAndHash(presharedKey, key);
            return state.DecryptAndHash(key, message[KeySize..], payload);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Split: (t0, t1) = KDF2(ck, empty). The initiator sends with t0 and receives with t1; the
    /// responder the reverse.
    /// </summary>
    public static void Split(NoiseSymmetricState state, bool initiator, Span<byte> sendKey, Span<byte> receiveKey)
    {
        if (initiator)
        {
            Crypto.NoiseHash.Kdf2(state.ChainingKey, ReadOnlySpan<byte>.Empty, sendKey, receiveKey);
        }
        else
        {
            Crypto.NoiseHash.Kdf2(state.ChainingKey, ReadOnlySpan<byte>.Empty, receiveKey, sendKey);
        }
    }

    private static bool IsZero(ReadOnlySpan<byte> value) => !value.ContainsAnyExcept((byte)0);
}
