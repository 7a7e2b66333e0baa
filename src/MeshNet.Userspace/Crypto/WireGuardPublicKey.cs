using System.Security.Cryptography;

namespace MeshNet.Userspace.Crypto;

/// <summary>
/// A Curve25519 public key (32 bytes) identifying a WireGuard peer. Immutable; safe to share
/// between threads and to use as a dictionary key. Public keys are not secret, so
/// <see cref="ToString"/> prints the standard base64 form.
/// </summary>
public sealed class WireGuardPublicKey : IEquatable<WireGuardPublicKey>
{
    /// <summary>Size of a public key in bytes.</summary>
    public const int Size = 32;

    private readonly byte[] _bytes;
    private readonly int _hash;

    private WireGuardPublicKey(byte[] bytes)
    {
        _bytes = bytes;
        _hash = BitConverter.ToInt32(bytes, 0) ^ BitConverter.ToInt32(bytes, 28);
    }

    /// <summary>Creates a key from its 32 raw bytes (copied).</summary>
    /// <exception cref="ArgumentException"><paramref name="bytes"/> is not 32 bytes long.</exception>
    public static WireGuardPublicKey FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"A WireGuard public key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        }
        return new WireGuardPublicKey(bytes.ToArray());
    }

    /// <summary>Parses the standard base64 form (44 characters) used by <c>wg</c>.</summary>
    /// <exception cref="FormatException">The text is not base64 of exactly 32 bytes.</exception>
    public static WireGuardPublicKey Parse(string base64)
    {
        ArgumentNullException.ThrowIfNull(base64);
        if (!TryParse(base64, out var key))
        {
            throw new FormatException("A WireGuard public key is 32 bytes in base64 (44 characters).");
        }
        return key;
    }

    /// <summary>Parses the base64 form; returns false instead of throwing on bad input.</summary>
    public static bool TryParse(string? base64, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out WireGuardPublicKey? key)
    {
        key = null;
        if (base64 is null || base64.Length != 44)
        {
            return false;
        }
        Span<byte> buffer = stackalloc byte[33];
        if (!Convert.TryFromBase64String(base64, buffer, out int written) || written != Size)
        {
            return false;
        }
        key = new WireGuardPublicKey(buffer[..Size].ToArray());
        return true;
    }

    /// <summary>The 32 raw bytes.</summary>
    public ReadOnlySpan<byte> AsSpan() => _bytes;

    /// <summary>Copies the 32 raw bytes into <paramref name="destination"/>.</summary>
    public void CopyTo(Span<byte> destination) => _bytes.CopyTo(destination);

    /// <summary>The standard base64 form.</summary>
    public string ToBase64() => Convert.ToBase64String(_bytes);

    /// <summary>True when every byte is zero (never a valid peer key).</summary>
    public bool IsZero() => !_bytes.AsSpan().ContainsAnyExcept((byte)0);

    /// <inheritdoc/>
    public bool Equals(WireGuardPublicKey? other) =>
        other is not null && CryptographicOperations.FixedTimeEquals(_bytes, other._bytes);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is WireGuardPublicKey other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _hash;

    /// <summary>The base64 form.</summary>
    public override string ToString() => ToBase64();

    /// <summary>A short, log-friendly form: the first 8 base64 characters.</summary>
    public string ToShortString() => ToBase64()[..8] + "…";
}
