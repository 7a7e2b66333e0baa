using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace MeshNet.Protocol;

/// <summary>
/// The proof that authenticates a node's control call: an HMAC-SHA256, keyed by a key derived
/// from X25519(node key, server key), over the method name, a timestamp, a nonce and the
/// SHA-256 of the serialized request. Only the holder of the node's private key (or the
/// server) can compute it; the timestamp and nonce let the server refuse replays.
/// </summary>
/// <remarks>Stateless and thread-safe. Secrets are zeroed after use.</remarks>
public static class ControlProof
{
    /// <summary>Metadata key carrying the node's public key (base64).</summary>
    public const string NodeKeyHeader = "meshnet-node-key";

    /// <summary>Metadata key carrying the unix time of the call in milliseconds.</summary>
    public const string TimestampHeader = "meshnet-timestamp";

    /// <summary>Metadata key carrying the call's random nonce (base64).</summary>
    public const string NonceHeader = "meshnet-nonce";

    /// <summary>Metadata key carrying the proof (base64).</summary>
    public const string ProofHeader = "meshnet-proof";

    /// <summary>Size of a nonce in bytes.</summary>
    public const int NonceSize = 16;

    /// <summary>Size of a proof (and of a proof key) in bytes.</summary>
    public const int ProofSize = 32;

    private static readonly byte[] ProofKeyInfo = Encoding.ASCII.GetBytes("meshnet control proof v1");
    private static readonly byte[] RotationLabel = Encoding.ASCII.GetBytes("meshnet key rotation v1");

    /// <summary>
    /// Derives the proof key from an X25519 shared secret (HKDF-SHA256). The caller zeroes
    /// <paramref name="proofKey"/> when done.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong sizes.</exception>
    public static void DeriveProofKey(ReadOnlySpan<byte> sharedSecret, Span<byte> proofKey)
    {
        if (sharedSecret.Length != 32 || proofKey.Length != ProofSize)
        {
            throw new ArgumentException("The shared secret and the proof key are 32 bytes.");
        }
        HKDF.DeriveKey(HashAlgorithmName.SHA256, sharedSecret, proofKey, ReadOnlySpan<byte>.Empty, ProofKeyInfo);
    }

    /// <summary>Computes the proof of one call into <paramref name="proof"/> (32 bytes).</summary>
    /// <param name="proofKey">From <see cref="DeriveProofKey"/>.</param>
    /// <param name="method">The full gRPC method name, e.g. <c>/meshnet.control.v1.Control/Register</c>.</param>
    /// <param name="unixMilliseconds">The timestamp sent in <see cref="TimestampHeader"/>.</param>
    /// <param name="nonce">The nonce sent in <see cref="NonceHeader"/>.</param>
    /// <param name="request">The serialized request message.</param>
    /// <param name="proof">Receives the 32-byte proof.</param>
    public static void Compute(ReadOnlySpan<byte> proofKey, string method, long unixMilliseconds, ReadOnlySpan<byte> nonce,
        ReadOnlySpan<byte> request, Span<byte> proof)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (proofKey.Length != ProofSize || nonce.Length != NonceSize || proof.Length != ProofSize)
        {
            throw new ArgumentException("Proof keys and proofs are 32 bytes, nonces 16.");
        }
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(request, digest);
        int methodLength = Encoding.UTF8.GetByteCount(method);
        int length = methodLength + 1 + 8 + NonceSize + digest.Length;
        byte[]? rented = length > 512 ? System.Buffers.ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> message = rented is null ? stackalloc byte[length] : rented.AsSpan(0, length);
        try
        {
            int offset = Encoding.UTF8.GetBytes(method, message);
            message[offset++] = 0;
            BinaryPrimitives.WriteInt64BigEndian(message[offset..], unixMilliseconds);
            offset += 8;
            nonce.CopyTo(message[offset..]);
            offset += NonceSize;
            digest.CopyTo(message[offset..]);
            HMACSHA256.HashData(proofKey, message, proof);
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Checks a proof in constant time.</summary>
    public static bool Verify(ReadOnlySpan<byte> proofKey, string method, long unixMilliseconds, ReadOnlySpan<byte> nonce,
        ReadOnlySpan<byte> request, ReadOnlySpan<byte> proof)
    {
        if (proof.Length != ProofSize || nonce.Length != NonceSize || proofKey.Length != ProofSize)
        {
            return false;
        }
        Span<byte> expected = stackalloc byte[ProofSize];
        Compute(proofKey, method, unixMilliseconds, nonce, request, expected);
        return CryptographicOperations.FixedTimeEquals(expected, proof);
    }

    /// <summary>
    /// The key-rotation proof: made with the OLD key's proof key over the NEW node key, it shows
    /// that whoever rotates also holds the key being replaced.
    /// </summary>
    public static void ComputeRotationProof(ReadOnlySpan<byte> oldKeyProofKey, ReadOnlySpan<byte> newNodeKey, Span<byte> proof)
    {
        if (oldKeyProofKey.Length != ProofSize || newNodeKey.Length != 32 || proof.Length != ProofSize)
        {
            throw new ArgumentException("Proof keys, node keys and proofs are 32 bytes.");
        }
        Span<byte> message = stackalloc byte[RotationLabel.Length + 32];
        RotationLabel.CopyTo(message);
        newNodeKey.CopyTo(message[RotationLabel.Length..]);
        HMACSHA256.HashData(oldKeyProofKey, message, proof);
    }

    /// <summary>Checks a key-rotation proof in constant time.</summary>
    public static bool VerifyRotationProof(ReadOnlySpan<byte> oldKeyProofKey, ReadOnlySpan<byte> newNodeKey, ReadOnlySpan<byte> proof)
    {
        if (proof.Length != ProofSize || newNodeKey.Length != 32 || oldKeyProofKey.Length != ProofSize)
        {
            return false;
        }
        Span<byte> expected = stackalloc byte[ProofSize];
        ComputeRotationProof(oldKeyProofKey, newNodeKey, expected);
        return CryptographicOperations.FixedTimeEquals(expected, proof);
    }
}
