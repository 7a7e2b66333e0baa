using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// One session's transport keys: the result of a completed handshake. Holds the send and
/// receive ChaCha20-Poly1305 keys (NSec handles, zeroed on disposal), the send counter, the
/// replay window and the indices both sides use to address it.
/// </summary>
/// <remarks>
/// Lifetime: a keypair may be retired (rotated out, expired, peer removed) while another
/// thread is encrypting or decrypting with it. Users therefore bracket every use with
/// <see cref="TryAcquire"/> / <see cref="Release"/>; the keys are disposed when the keypair
/// has been retired and the last user has released it. Thread-safe.
/// </remarks>
internal sealed class Keypair
{
    // Bit 0: retired. Bits 1..31: number of users holding it.
    private int _state;
    private long _sendNonce;
    private readonly ReplayFilter _replay = new();
    private readonly object _replayLock = new();
    private readonly Key _sendKey;
    private readonly Key _receiveKey;

    public Keypair(Peer peer, ReadOnlySpan<byte> sendKey, ReadOnlySpan<byte> receiveKey, bool isInitiator,
        long createdTimestamp, uint localIndex, uint remoteIndex)
    {
        Peer = peer;
        _sendKey = NoiseSymmetricState.ImportAeadKey(sendKey);
        _receiveKey = NoiseSymmetricState.ImportAeadKey(receiveKey);
        IsInitiator = isInitiator;
        CreatedTimestamp = createdTimestamp;
        LocalIndex = localIndex;
        RemoteIndex = remoteIndex;
    }

    /// <summary>The peer this session belongs to.</summary>
    public Peer Peer { get; }

    /// <summary>True when we sent the initiation that created this session.</summary>
    public bool IsInitiator { get; }

    /// <summary>When the session was derived (<see cref="TimeProvider.GetTimestamp"/> units).</summary>
    public long CreatedTimestamp { get; }

    /// <summary>Our index: the receiver index the peer puts on transport messages for us.</summary>
    public uint LocalIndex { get; }

    /// <summary>The peer's index, written as receiver on our transport messages.</summary>
    public uint RemoteIndex { get; }

    /// <summary>The send key; only valid between <see cref="TryAcquire"/> and <see cref="Release"/>.</summary>
    public Key SendKey => _sendKey;

    /// <summary>The receive key; only valid between <see cref="TryAcquire"/> and <see cref="Release"/>.</summary>
    public Key ReceiveKey => _receiveKey;

    /// <summary>The next send counter that would be used (for rekey decisions).</summary>
    public ulong SendNonce => (ulong)Volatile.Read(ref _sendNonce);

    /// <summary>True once retired: no new user may acquire it.</summary>
    public bool IsRetired => (Volatile.Read(ref _state) & 1) != 0;

    /// <summary>
    /// Takes the next send counter. Returns false (and pins the counter at the limit) once the
    /// session has used up <see cref="WireGuardProtocol.RejectAfterMessages"/>.
    /// </summary>
    public bool TryTakeSendNonce(out ulong nonce)
    {
        nonce = (ulong)Interlocked.Increment(ref _sendNonce) - 1;
        if (nonce >= WireGuardProtocol.RejectAfterMessages)
        {
            Volatile.Write(ref _sendNonce, unchecked((long)WireGuardProtocol.RejectAfterMessages));
            return false;
        }
        return true;
    }

    /// <summary>Test hook: moves the send counter (to exercise rekey and reject by count).</summary>
    internal void SetSendNonceForTest(ulong value) => Volatile.Write(ref _sendNonce, unchecked((long)value));

    /// <summary>
    /// Checks an authenticated packet's counter against the replay window and records it.
    /// </summary>
    public bool ValidateCounter(ulong counter)
    {
        lock (_replayLock)
        {
            return _replay.ValidateCounter(counter, WireGuardProtocol.RejectAfterMessages);
        }
    }

    /// <summary>Registers a user. Returns false when the keypair is retired.</summary>
    public bool TryAcquire()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if ((state & 1) != 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _state, state + 2, state) == state)
            {
                return true;
            }
        }
    }

    /// <summary>Ends a use begun with <see cref="TryAcquire"/>.</summary>
    public void Release()
    {
        if (Interlocked.Add(ref _state, -2) == 1)
        {
            DisposeKeys();
        }
    }

    /// <summary>
    /// Retires the keypair: no new users; keys are zeroed once the current users release it.
    /// Idempotent.
    /// </summary>
    public void Retire()
    {
        int previous = Interlocked.Or(ref _state, 1);
        if (previous == 0)
        {
            DisposeKeys();
        }
    }

    private void DisposeKeys()
    {
        // Reached exactly once: either Retire saw no users, or the last Release after Retire.
        _sendKey.Dispose();
        _receiveKey.Dispose();
    }
}
