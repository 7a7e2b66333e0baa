using System.Security.Cryptography;
using MeshNet.Userspace.Crypto;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Initiator side of WireGuard's MAC/cookie mechanism for one remote peer (wireguard-go
/// <c>device/cookie.go</c>): stamps mac1 and mac2 on outgoing handshake messages and consumes
/// the peer's cookie replies.
/// </summary>
/// <remarks>
/// <para>Keys come from the REMOTE static public key: mac1 key = HASH("mac1----" || remote),
/// cookie decryption key = HASH("cookie--" || remote).</para>
/// <para>Semantics follow wireguard-go: every <see cref="AddMacs"/> records its mac1 as the
/// "last mac1 sent"; a reply is accepted only if it decrypts with that mac1 as associated
/// data. Consuming a reply does not clear the "last mac1 sent" flag (wireguard-go keeps it;
/// the Linux module clears it), so a duplicate of the same reply is accepted again and merely
/// refreshes the same cookie; a reply bound to an older mac1 no longer decrypts once a newer
/// message has been stamped. A cookie is used for mac2 while it is at most
/// <see cref="CookieChecker.CookieRefreshTime"/> old.</para>
/// <para>Thread safety: all members may be called concurrently; <see cref="_lock"/> guards the
/// cookie, its timestamp and the last mac1. Dispose is idempotent, zeroes the cookie and
/// the last mac1 and frees the AEAD key; afterwards members throw
/// <see cref="ObjectDisposedException"/>.</para>
/// <para>Nothing here allocates after construction.</para>
/// </remarks>
internal sealed class CookieGenerator : IDisposable
{
    private readonly TimeProvider _timeProvider;
    private readonly byte[] _mac1Key;   // immutable; not secret (derived from the peer's public key)
    private readonly Key _cookieKey;    // immutable; XChaCha20-Poly1305 key for the peer's cookie replies

    private readonly Lock _lock = new();
    private readonly byte[] _cookie = GC.AllocateArray<byte>(CookieChecker.CookieSize, pinned: true); // guarded by _lock
    private readonly byte[] _lastMac1 = GC.AllocateArray<byte>(NoiseHash.MacSize, pinned: true);       // guarded by _lock
    private long _cookieTimestamp;      // guarded by _lock; TimeProvider timestamp of the cookie's arrival
    private bool _hasCookie;            // guarded by _lock
    private bool _hasLastMac1;          // guarded by _lock
    private bool _disposed;             // guarded by _lock

    /// <summary>Precomputes the mac1 and cookie keys from the remote peer's static public key.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public CookieGenerator(WireGuardPublicKey remoteStatic, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(remoteStatic);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _timeProvider = timeProvider;
        _mac1Key = new byte[NoiseHash.HashSize];
        NoiseHash.Hash(NoiseHash.LabelMac1, remoteStatic.AsSpan(), _mac1Key);
        _cookieKey = CookieChecker.ImportCookieKey(remoteStatic);
    }

    /// <summary>
    /// Fills the last 32 bytes of a handshake message: mac1 = MAC(mac1 key, message up to
    /// mac1), remembered as the last mac1 sent; then mac2 = MAC(cookie, message up to mac2)
    /// when a cookie at most <see cref="CookieChecker.CookieRefreshTime"/> old is held, else
    /// 16 zero bytes.
    /// </summary>
    /// <param name="message">The whole message, all fields but the MACs already written.</param>
    /// <exception cref="ArgumentException">The message is shorter than the two MACs.</exception>
    /// <exception cref="ObjectDisposedException">The generator is disposed.</exception>
    public void AddMacs(Span<byte> message)
    {
        CookieChecker.CheckMessage(message);
        int mac1Offset = message.Length - CookieChecker.MacsSize;
        int mac2Offset = message.Length - NoiseHash.MacSize;
        Span<byte> mac1 = message.Slice(mac1Offset, NoiseHash.MacSize);
        Span<byte> mac2 = message[mac2Offset..];

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            NoiseHash.Mac(_mac1Key, message[..mac1Offset], mac1);
            mac1.CopyTo(_lastMac1);
            _hasLastMac1 = true;

            if (_hasCookie && _timeProvider.GetElapsedTime(_cookieTimestamp) <= CookieChecker.CookieRefreshTime)
            {
                NoiseHash.Mac(_cookie, message[..mac2Offset], mac2);
            }
            else
            {
                mac2.Clear();
            }
        }
    }

    /// <summary>
    /// Consumes a cookie reply (the whole 64-byte message). Returns true and stores the cookie
    /// (timestamped now) only if the message is a well-formed type-3 reply, a mac1 has been
    /// sent, and the cookie decrypts and authenticates with that last mac1 as associated data.
    /// Never throws on bad input. The receiver index is not checked here: the caller uses it
    /// to find this peer.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The generator is disposed.</exception>
    public bool ConsumeReply(ReadOnlySpan<byte> reply)
    {
        if (reply.Length != CookieChecker.ReplySize
            || reply[0] != CookieChecker.ReplyType || reply[1] != 0 || reply[2] != 0 || reply[3] != 0)
        {
            return false;
        }
        ReadOnlySpan<byte> nonce = reply.Slice(8, CookieChecker.NonceSize);
        ReadOnlySpan<byte> sealedCookie = reply[(8 + CookieChecker.NonceSize)..];

        Span<byte> cookie = stackalloc byte[CookieChecker.CookieSize];
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_hasLastMac1
                    || !AeadAlgorithm.XChaCha20Poly1305.Decrypt(_cookieKey, nonce, _lastMac1, sealedCookie, cookie))
                {
                    return false;
                }
                cookie.CopyTo(_cookie);
                _cookieTimestamp = _timeProvider.GetTimestamp();
                _hasCookie = true;
                return true;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cookie);
        }
    }

    /// <summary>Zeroes the cookie and the last mac1 and frees the AEAD key. Idempotent.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            CryptographicOperations.ZeroMemory(_cookie);
            CryptographicOperations.ZeroMemory(_lastMac1);
            _hasCookie = false;
            _hasLastMac1 = false;
            _cookieKey.Dispose();
        }
    }
}
