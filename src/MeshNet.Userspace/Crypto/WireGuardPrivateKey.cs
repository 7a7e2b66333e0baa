using System.Security.Cryptography;
using NSec.Cryptography;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// A Curve25519 private key. The secret lives in libsodium-guarded memory owned by NSec and is
/// zeroed on <see cref="Dispose"/>; it never appears in <see cref="ToString"/>, logs or
/// exceptions. Thread-safe for concurrent use; using it after disposal throws
/// <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class WireGuardPrivateKey : IDisposable
{
    /// <summary>Size of a private key in bytes.</summary>
    public const int Size = 32;

    private readonly Key _key;

    private WireGuardPrivateKey(Key key)
    {
        _key = key;
        PublicKey = WireGuardPublicKey.FromBytes(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>The matching public key.</summary>
    public WireGuardPublicKey PublicKey { get; }

    /// <summary>The NSec key handle, for key agreement inside the library.</summary>
    internal Key Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _key;
        }
    }

    private volatile bool _disposed;

    /// <summary>Generates a new random private key.</summary>
    public static WireGuardPrivateKey Generate()
    {
        var creation = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        return new(Key.Create(KeyAgreementAlgorithm.X25519, creation));
    }

    /// <summary>Creates a key from its 32 raw bytes. The caller keeps ownership of (and should zero) its copy.</summary>
    /// <exception cref="ArgumentException">Not 32 bytes.</exception>
    public static WireGuardPrivateKey FromBytes(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != Size)
        {
            throw new ArgumentException($"A WireGuard private key is {Size} bytes.", nameof(secret));
        }
        var creation = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        return new WireGuardPrivateKey(Key.Import(KeyAgreementAlgorithm.X25519, secret, KeyBlobFormat.RawPrivateKey, creation));
    }

    /// <summary>Parses the base64 form used by <c>wg genkey</c>.</summary>
    /// <exception cref="FormatException">Not base64 of 32 bytes (the message never echoes the input).</exception>
    public static WireGuardPrivateKey Parse(string base64)
    {
        ArgumentNullException.ThrowIfNull(base64);
        Span<byte> buffer = stackalloc byte[33];
        try
        {
            if (base64.Length != 44 || !Convert.TryFromBase64String(base64, buffer, out int written) || written != Size)
            {
                throw new FormatException("A WireGuard private key is 32 bytes in base64 (44 characters).");
            }
            return FromBytes(buffer[..Size]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>
    /// X25519 key agreement with <paramref name="peerPublicKey"/> (32 bytes): writes the 32-byte
    /// shared secret into <paramref name="sharedSecret"/>, which the caller must zero when done.
    /// </summary>
    /// <returns>False when the peer key is invalid or the result is all zero (a low-order point).</returns>
    public bool TryAgree(ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedSecret)
    {
        if (peerPublicKey.Length != WireGuardPublicKey.Size || sharedSecret.Length < Size)
        {
            return false;
        }
        if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, peerPublicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return false;
        }
        var creation = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        using var secret = KeyAgreementAlgorithm.X25519.Agree(Handle, peer, in creation);
        return secret is not null && secret.TryExport(SharedSecretBlobFormat.RawSharedSecret, sharedSecret, out int written) && written == Size;
    }

    /// <summary>
    /// Copies the 32 secret bytes into <paramref name="destination"/>, for persisting the key.
    /// The caller must zero its copy when done.
    /// </summary>
    public void ExportSecret(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException($"The destination must hold {Size} bytes.", nameof(destination));
        }
        if (!Handle.TryExport(KeyBlobFormat.RawPrivateKey, destination, out int written) || written != Size)
        {
            throw new CryptographicException("The private key could not be exported.");
        }
    }

    /// <summary>
    /// Returns the base64 form of the secret, for writing a <c>wg</c> configuration. The
    /// returned string cannot be zeroed: prefer <see cref="ExportSecret"/>.
    /// </summary>
    public string ExportBase64()
    {
        Span<byte> buffer = stackalloc byte[Size];
        try
        {
            ExportSecret(buffer);
            return Convert.ToBase64String(buffer);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>Zeroes and releases the secret. Idempotent.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _key.Dispose();
    }

    /// <summary>Never shows the secret: only the public key.</summary>
    public override string ToString() => $"WireGuardPrivateKey(public {PublicKey.ToShortString()})";
}
