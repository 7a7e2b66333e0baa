using System.Buffers.Binary;
using System.Security.Cryptography;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using NSec.Cryptography;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Responder side of WireGuard's MAC/cookie mechanism (whitepaper section 5.4.7,
/// wireguard-go <c>device/cookie.go</c>): verifies mac1 and mac2 of incoming handshake
/// messages and, under load, builds cookie replies.
/// </summary>
/// <remarks>
/// <para>A handshake message passed in is the whole message (initiation, 148 bytes, or
/// response, 92 bytes) ending in mac1 (16 bytes) then mac2 (16 bytes). mac1 covers the
/// message up to mac1; mac2 covers it up to mac2, mac1 included.</para>
/// <para>Keys: mac1 key = HASH("mac1----" || local static public key), cookie encryption key =
/// HASH("cookie--" || local static public key); both are derived from public data. The
/// cookie secret is 32 random bytes, created lazily by the first <see cref="CreateReply"/>
/// and replaced by the first <see cref="CreateReply"/> after it is older than
/// <see cref="CookieRefreshTime"/>. A cookie is MAC(secret, source address || port); cookies
/// (and thus mac2 values) stop verifying once the secret is older than
/// <see cref="CookieRefreshTime"/>, as in wireguard-go.</para>
/// <para>Thread safety: all members may be called concurrently. <see cref="_lock"/> guards the
/// secret and its timestamp; the mac1 key and the AEAD key are immutable until
/// <see cref="Dispose"/>. Dispose is idempotent; afterwards every member throws
/// <see cref="ObjectDisposedException"/>, and a call racing Dispose either completes or throws
/// it. Dispose zeroes the secret and frees the AEAD key.</para>
/// <para>Nothing here allocates after construction.</para>
/// </remarks>
internal sealed class CookieChecker : IDisposable
{
    /// <summary>Size of a cookie reply message in bytes.</summary>
    public const int ReplySize = 64;

    /// <summary>Message type of a cookie reply.</summary>
    public const byte ReplyType = 3;

    /// <summary>Trailing bytes of a handshake message taken by mac1 and mac2.</summary>
    public const int MacsSize = 2 * NoiseHash.MacSize;

    /// <summary>Size of a cookie (BLAKE2s-128 output) in bytes.</summary>
    public const int CookieSize = NoiseHash.MacSize;

    internal const int NonceSize = 24;
    internal const int SecretSize = 32;

    /// <summary>CookieRefreshTime: lifetime of a cookie secret (responder) and of a cookie (initiator).</summary>
    public static TimeSpan CookieRefreshTime => TimeSpan.FromSeconds(120);

    private readonly TimeProvider _timeProvider;
    private readonly byte[] _mac1Key;   // immutable; not secret (derived from our public key)
    private readonly Key _cookieKey;    // immutable; XChaCha20-Poly1305 key for cookie replies

    private readonly Lock _lock = new();
    private readonly byte[] _secret = GC.AllocateArray<byte>(SecretSize, pinned: true); // guarded by _lock; pinned so the GC leaves no copies
    private long _secretTimestamp;      // guarded by _lock; TimeProvider timestamp of the secret's creation
    private bool _hasSecret;            // guarded by _lock
    private volatile bool _disposed;    // written under _lock

    /// <summary>Precomputes the mac1 and cookie keys from our static public key.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public CookieChecker(WireGuardPublicKey localStatic, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(localStatic);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _timeProvider = timeProvider;
        _mac1Key = new byte[NoiseHash.HashSize];
        NoiseHash.Hash(NoiseHash.LabelMac1, localStatic.AsSpan(), _mac1Key);
        _cookieKey = ImportCookieKey(localStatic);
    }

    /// <summary>True when the message's mac1 is valid (compared in constant time).</summary>
    /// <exception cref="ArgumentException">The message is shorter than the two MACs.</exception>
    /// <exception cref="ObjectDisposedException">The checker is disposed.</exception>
    public bool CheckMac1(ReadOnlySpan<byte> message)
    {
        CheckMessage(message);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Span<byte> expected = stackalloc byte[NoiseHash.MacSize];
        NoiseHash.Mac(_mac1Key, message[..^MacsSize], expected);
        return CryptographicOperations.FixedTimeEquals(expected, message.Slice(message.Length - MacsSize, NoiseHash.MacSize));
    }

    /// <summary>
    /// True when the message's mac2 is valid for the cookie we would give
    /// <paramref name="source"/> (constant-time comparison). False when we have no cookie
    /// secret younger than <see cref="CookieRefreshTime"/>: then no peer can hold a valid cookie.
    /// </summary>
    /// <exception cref="ArgumentException">The message is shorter than the two MACs.</exception>
    /// <exception cref="ObjectDisposedException">The checker is disposed.</exception>
    public bool CheckMac2(ReadOnlySpan<byte> message, in NetEndpoint source)
    {
        CheckMessage(message);
        Span<byte> cookie = stackalloc byte[CookieSize];
        Span<byte> expected = stackalloc byte[NoiseHash.MacSize];
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!IsSecretFresh())
                {
                    return false;
                }
                ComputeCookie(source, cookie);
            }
            NoiseHash.Mac(cookie, message[..^NoiseHash.MacSize], expected);
            return CryptographicOperations.FixedTimeEquals(expected, message[^NoiseHash.MacSize..]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cookie);
            CryptographicOperations.ZeroMemory(expected);
        }
    }

    /// <summary>
    /// Writes a cookie reply to <paramref name="message"/> from <paramref name="source"/>:
    /// type 3, <paramref name="receiverIndex"/> (the triggering message's sender index), a
    /// random 24-byte nonce, and the cookie for <paramref name="source"/> sealed with
    /// XChaCha20-Poly1305 under the cookie key with the message's mac1 as associated data.
    /// Creates or rotates the cookie secret when it is missing or older than
    /// <see cref="CookieRefreshTime"/>. Call it only for messages whose mac1 is valid.
    /// </summary>
    /// <param name="message">The triggering handshake message (whole, MACs included).</param>
    /// <param name="receiverIndex">The triggering message's sender index.</param>
    /// <param name="source">The address and port the message came from.</param>
    /// <param name="reply">Exactly 64 bytes, not overlapping <paramref name="message"/>.</param>
    /// <exception cref="ArgumentException">Bad sizes, or <paramref name="reply"/> overlaps <paramref name="message"/>.</exception>
    /// <exception cref="ObjectDisposedException">The checker is disposed.</exception>
    public void CreateReply(ReadOnlySpan<byte> message, uint receiverIndex, in NetEndpoint source, Span<byte> reply)
    {
        CheckMessage(message);
        if (reply.Length != ReplySize)
        {
            throw new ArgumentException($"A cookie reply is {ReplySize} bytes, not {reply.Length}.", nameof(reply));
        }
        if (reply.Overlaps(message))
        {
            throw new ArgumentException("The reply buffer must not overlap the message.", nameof(reply));
        }

        Span<byte> cookie = stackalloc byte[CookieSize];
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!IsSecretFresh())
                {
                    RandomNumberGenerator.Fill(_secret);
                    _secretTimestamp = _timeProvider.GetTimestamp();
                    _hasSecret = true;
                }
                ComputeCookie(source, cookie);
            }

            reply[0] = ReplyType;
            reply[1..4].Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], receiverIndex);
            Span<byte> nonce = reply.Slice(8, NonceSize);
            RandomNumberGenerator.Fill(nonce);
            ReadOnlySpan<byte> mac1 = message.Slice(message.Length - MacsSize, NoiseHash.MacSize);
            // Outside the lock: the key is immutable, and NSec throws ObjectDisposedException
            // if a concurrent Dispose got there first.
            AeadAlgorithm.XChaCha20Poly1305.Encrypt(_cookieKey, nonce, mac1, cookie, reply[(8 + NonceSize)..]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cookie);
        }
    }

    /// <summary>Zeroes the cookie secret and frees the AEAD key. Idempotent.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            CryptographicOperations.ZeroMemory(_secret);
            _hasSecret = false;
            _cookieKey.Dispose();
        }
    }

    /// <summary>Imports HASH("cookie--" || static public key) as an XChaCha20-Poly1305 key.</summary>
    internal static Key ImportCookieKey(WireGuardPublicKey staticPublic)
    {
        Span<byte> keyBytes = stackalloc byte[NoiseHash.HashSize];
        try
        {
            NoiseHash.Hash(NoiseHash.LabelCookie, staticPublic.AsSpan(), keyBytes);
            return Key.Import(AeadAlgorithm.XChaCha20Poly1305, keyBytes, KeyBlobFormat.RawSymmetricKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keyBytes);
        }
    }

    /// <summary>Throws unless the message can hold mac1 and mac2.</summary>
    internal static void CheckMessage(ReadOnlySpan<byte> message)
    {
        if (message.Length < MacsSize)
        {
            throw new ArgumentException(
                $"A handshake message ends in mac1 and mac2 ({MacsSize} bytes); got {message.Length} bytes.", nameof(message));
        }
    }

    // Caller holds _lock.
    private bool IsSecretFresh() =>
        _hasSecret && _timeProvider.GetElapsedTime(_secretTimestamp) <= CookieRefreshTime;

    // Caller holds _lock. cookie = MAC(secret, address (16, IPv4-mapped) || port (2)).
    private void ComputeCookie(in NetEndpoint source, Span<byte> cookie)
    {
        Span<byte> canonical = stackalloc byte[18];
        source.WriteCanonical(canonical);
        NoiseHash.Mac(_secret, canonical, cookie);
    }
}
