using System.Security.Cryptography;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// An optional 32-byte symmetric key mixed into the handshake (the "psk" of IKpsk2). The
/// bytes live in a pinned array that is zeroed on <see cref="Dispose"/>; they never appear
/// in <see cref="ToString"/>. Thread-safe for reads; not usable after disposal.
/// </summary>
public sealed class WireGuardPresharedKey : IDisposable
{
    /// <summary>Size of a pre-shared key in bytes.</summary>
    public const int Size = 32;

    private readonly byte[] _secret = GC.AllocateArray<byte>(Size, pinned: true);
    private volatile bool _disposed;

    private WireGuardPresharedKey()
    {
    }

    /// <summary>Generates a random pre-shared key.</summary>
    public static WireGuardPresharedKey Generate()
    {
        var key = new WireGuardPresharedKey();
        RandomNumberGenerator.Fill(key._secret);
        return key;
    }

    /// <summary>Creates a key from 32 raw bytes (copied; the caller should zero its copy).</summary>
    /// <exception cref="ArgumentException">Not 32 bytes.</exception>
    public static WireGuardPresharedKey FromBytes(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != Size)
        {
            throw new ArgumentException($"A WireGuard pre-shared key is {Size} bytes.", nameof(secret));
        }
        var key = new WireGuardPresharedKey();
        secret.CopyTo(key._secret);
        return key;
    }

    /// <summary>Parses the base64 form used by <c>wg genpsk</c>.</summary>
    /// <exception cref="FormatException">Not base64 of 32 bytes (the message never echoes the input).</exception>
    public static WireGuardPresharedKey Parse(string base64)
    {
        ArgumentNullException.ThrowIfNull(base64);
        Span<byte> buffer = stackalloc byte[33];
        try
        {
            if (base64.Length != 44 || !Convert.TryFromBase64String(base64, buffer, out int written) || written != Size)
            {
                throw new FormatException("A WireGuard pre-shared key is 32 bytes in base64 (44 characters).");
            }
            return FromBytes(buffer[..Size]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>Returns a new holder with the same secret, owned by the caller.</summary>
    public WireGuardPresharedKey Clone() => FromBytes(Secret);

    /// <summary>The secret bytes, for the handshake inside the library.</summary>
    internal ReadOnlySpan<byte> Secret
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _secret;
        }
    }

    /// <summary>Copies the secret into <paramref name="destination"/> (at least 32 bytes); the caller must zero its copy.</summary>
    public void ExportSecret(Span<byte> destination) => Secret.CopyTo(destination);

    /// <summary>Zeroes the secret. Idempotent.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }

    /// <summary>Never shows the secret.</summary>
    public override string ToString() => "WireGuardPresharedKey(***)";
}
