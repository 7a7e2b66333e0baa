using System.Security.Cryptography;
using MeshNet.Userspace.Crypto;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The Noise symmetric state (chaining key <c>ck</c> and transcript hash <c>h</c>) with the
/// operations of Noise_*_25519_ChaChaPoly_BLAKE2s that WireGuard uses. Every key is used for
/// exactly one encryption, so the AEAD nonce is always zero.
/// </summary>
/// <remarks>
/// Not thread-safe: one instance belongs to one handshake, guarded by its owner's lock.
/// The secrets live in pinned arrays and are zeroed by <see cref="Clear"/> and
/// <see cref="Dispose"/>. No method allocates except <see cref="Dh"/>, which imports the
/// peer's public key (once per handshake message).
/// </remarks>
internal sealed class NoiseSymmetricState : IDisposable
{
    /// <summary>Size of hashes, chaining keys and AEAD keys.</summary>
    public const int KeySize = 32;

    /// <summary>Size of an X25519 public key.</summary>
    public const int PublicKeySize = 32;

    /// <summary>Size of the Poly1305 tag.</summary>
    public const int TagSize = 16;

    private readonly byte[] _chainingKey = GC.AllocateArray<byte>(KeySize, pinned: true);
    private readonly byte[] _hash = GC.AllocateArray<byte>(KeySize, pinned: true);

    /// <summary>The chaining key <c>ck</c>.</summary>
    public Span<byte> ChainingKey => _chainingKey;

    /// <summary>The transcript hash <c>h</c>.</summary>
    public Span<byte> Hash => _hash;

    /// <summary>Starts from a precomputed (ck, h) pair, such as WireGuard's Ci and Hi.</summary>
    public void InitializePrecomputed(ReadOnlySpan<byte> chainingKey, ReadOnlySpan<byte> hash)
    {
        chainingKey.CopyTo(_chainingKey);
        hash.CopyTo(_hash);
    }

    /// <summary>
    /// Noise InitializeSymmetric(protocolName) followed by MixHash(prologue): the generic start
    /// used by test vectors. For WireGuard, ck = Ci and h = Hi.
    /// </summary>
    public void InitializeProtocol(ReadOnlySpan<byte> protocolName, ReadOnlySpan<byte> prologue)
    {
        if (protocolName.Length <= KeySize)
        {
            _hash.AsSpan().Clear();
            protocolName.CopyTo(_hash);
        }
        else
        {
            NoiseHash.Hash(protocolName, _hash);
        }
        _hash.CopyTo(_chainingKey, 0);
        MixHash(prologue);
    }

    /// <summary>Copies the state of <paramref name="other"/>.</summary>
    public void CopyFrom(NoiseSymmetricState other)
    {
        other._chainingKey.CopyTo(_chainingKey, 0);
        other._hash.CopyTo(_hash, 0);
    }

    /// <summary>h = HASH(h || data).</summary>
    public void MixHash(ReadOnlySpan<byte> data) => NoiseHash.Hash(_hash, data, _hash);

    /// <summary>ck = KDF1(ck, input): the extra MixKey of the <c>e</c> token in PSK handshakes.</summary>
    public void MixChainingKey(ReadOnlySpan<byte> input) => NoiseHash.Kdf1(_chainingKey, input, _chainingKey);

    /// <summary>(ck, key) = KDF2(ck, input).</summary>
    public void MixKey(ReadOnlySpan<byte> input, Span<byte> key) => NoiseHash.Kdf2(_chainingKey, input, _chainingKey, key);

    /// <summary>(ck, tau, key) = KDF3(ck, input); h = HASH(h || tau). The PSK token.</summary>
    public void MixKeyAndHash(ReadOnlySpan<byte> input, Span<byte> key)
    {
        Span<byte> tau = stackalloc byte[KeySize];
        NoiseHash.Kdf3(_chainingKey, input, _chainingKey, tau, key);
        MixHash(tau);
        CryptographicOperations.ZeroMemory(tau);
    }

    /// <summary>
    /// (ck, key) = KDF2(ck, DH(privateKey, publicKey)).
    /// </summary>
    /// <returns>False when the public key is invalid or the shared secret is all zero.</returns>
    public bool MixDh(Key privateKey, ReadOnlySpan<byte> publicKey, Span<byte> key)
    {
        Span<byte> shared = stackalloc byte[KeySize];
        try
        {
            if (!Dh(privateKey, publicKey, shared))
            {
                return false;
            }
            MixKey(shared, key);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    /// <summary>ciphertext = AEAD(key, 0, plaintext, h); h = HASH(h || ciphertext).</summary>
    public void EncryptAndHash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        Seal(key, _hash, plaintext, ciphertext[..(plaintext.Length + TagSize)]);
        MixHash(ciphertext[..(plaintext.Length + TagSize)]);
    }

    /// <summary>plaintext = AEAD-open(key, 0, ciphertext, h); on success h = HASH(h || ciphertext).</summary>
    /// <returns>False when authentication fails (the state is then unchanged).</returns>
    public bool DecryptAndHash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (!Open(key, _hash, ciphertext, plaintext[..(ciphertext.Length - TagSize)]))
        {
            return false;
        }
        MixHash(ciphertext);
        return true;
    }

    /// <summary>Zeroes ck and h.</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(_chainingKey);
        CryptographicOperations.ZeroMemory(_hash);
    }

    /// <summary>Zeroes the state.</summary>
    public void Dispose() => Clear();

    /// <summary>
    /// X25519(privateKey, publicKey) into <paramref name="shared"/> (32 bytes).
    /// </summary>
    /// <returns>False for an unparsable public key or an all-zero result (a low-order point).</returns>
    public static bool Dh(Key privateKey, ReadOnlySpan<byte> publicKey, Span<byte> shared)
    {
        if (!PublicKey.TryImport(KeyAgreementAlgorithm.X25519, publicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return false;
        }
        var creation = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        using var secret = KeyAgreementAlgorithm.X25519.Agree(privateKey, peer, in creation);
        if (secret is null)
        {
            return false; // NSec reports an all-zero shared secret as null.
        }
        return secret.TryExport(SharedSecretBlobFormat.RawSharedSecret, shared, out int written) && written == KeySize;
    }

    /// <summary>ChaCha20-Poly1305 with a zero nonce, from a raw 32-byte key.</summary>
    public static void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        using var aeadKey = ImportAeadKey(key);
        Span<byte> nonce = stackalloc byte[12];
        nonce.Clear();
        AeadAlgorithm.ChaCha20Poly1305.Encrypt(aeadKey, nonce, associatedData, plaintext, ciphertext);
    }

    /// <summary>ChaCha20-Poly1305 open with a zero nonce, from a raw 32-byte key.</summary>
    public static bool Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        using var aeadKey = ImportAeadKey(key);
        Span<byte> nonce = stackalloc byte[12];
        nonce.Clear();
        return AeadAlgorithm.ChaCha20Poly1305.Decrypt(aeadKey, nonce, associatedData, ciphertext, plaintext);
    }

    /// <summary>Imports a raw ChaCha20-Poly1305 key into an NSec handle (zeroed when disposed).</summary>
    public static Key ImportAeadKey(ReadOnlySpan<byte> key) =>
        Key.Import(AeadAlgorithm.ChaCha20Poly1305, key, KeyBlobFormat.RawSymmetricKey);
}
