using MeshNet.Userspace.Diagnostics;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Live counters of a <see cref="WireGuardDevice"/>: drops by reason and protocol events.
/// Reads are lock-free snapshots of monotonically increasing values; thread-safe.
/// </summary>
public sealed class WireGuardDeviceCounters
{
    private readonly ReasonCounters<WireGuardDropReason> _drops = new();
    private long _initiationsSent;
    private long _responsesSent;
    private long _cookieRepliesSent;
    private long _cookieRepliesAccepted;
    private long _sessionsEstablished;
    private long _crossedHandshakes;
    private long _keepalivesSent;
    private long _transportSent;
    private long _transportReceived;

    /// <summary>How many datagrams or packets were dropped for <paramref name="reason"/>.</summary>
    public long this[WireGuardDropReason reason] => _drops[reason];

    /// <summary>The sum of all drop counters.</summary>
    public long TotalDropped => _drops.Total;

    /// <summary>Handshake initiations sent (first tries and retries).</summary>
    public long HandshakeInitiationsSent => Volatile.Read(ref _initiationsSent);

    /// <summary>Handshake responses sent.</summary>
    public long HandshakeResponsesSent => Volatile.Read(ref _responsesSent);

    /// <summary>Cookie replies sent while under load.</summary>
    public long CookieRepliesSent => Volatile.Read(ref _cookieRepliesSent);

    /// <summary>Cookie replies received and accepted.</summary>
    public long CookieRepliesAccepted => Volatile.Read(ref _cookieRepliesAccepted);

    /// <summary>Sessions (keypairs) derived, as initiator or responder.</summary>
    public long SessionsEstablished => Volatile.Read(ref _sessionsEstablished);

    /// <summary>
    /// Initiations received from a peer while our own initiation to it was waiting for its
    /// response (both sides started at once). Both are answered, and the response to ours is still
    /// accepted, so the session is up after one round trip instead of a 5-second retry.
    /// </summary>
    public long CrossedHandshakes => Volatile.Read(ref _crossedHandshakes);

    /// <summary>Keepalive (empty transport) messages sent.</summary>
    public long KeepalivesSent => Volatile.Read(ref _keepalivesSent);

    /// <summary>Transport messages sent (data and keepalives).</summary>
    public long TransportMessagesSent => Volatile.Read(ref _transportSent);

    /// <summary>Transport messages received and authenticated.</summary>
    public long TransportMessagesReceived => Volatile.Read(ref _transportReceived);

    /// <summary>Every drop counter that is not zero.</summary>
    public IReadOnlyDictionary<WireGuardDropReason, long> DropsSnapshot() => _drops.Snapshot();

    /// <summary>A one-line summary of the non-zero counters, for logs and test failures.</summary>
    public override string ToString()
    {
        var drops = string.Join(", ", DropsSnapshot().Select(pair => $"{pair.Key}={pair.Value}"));
        return $"initiations={HandshakeInitiationsSent} responses={HandshakeResponsesSent} sessions={SessionsEstablished} crossed={CrossedHandshakes} " +
            $"cookiesSent={CookieRepliesSent} cookiesAccepted={CookieRepliesAccepted} keepalives={KeepalivesSent} " +
            $"sent={TransportMessagesSent} received={TransportMessagesReceived} drops=[{drops}]";
    }

    internal void Drop(WireGuardDropReason reason) => _drops.Increment(reason);

    internal void Drop(WireGuardDropReason reason, int count) => _drops.Add(reason, count);

    internal void InitiationSent() => Interlocked.Increment(ref _initiationsSent);

    internal void ResponseSent() => Interlocked.Increment(ref _responsesSent);

    internal void CookieReplySent() => Interlocked.Increment(ref _cookieRepliesSent);

    internal void CookieReplyAccepted() => Interlocked.Increment(ref _cookieRepliesAccepted);

    internal void SessionEstablished() => Interlocked.Increment(ref _sessionsEstablished);

    internal void CrossedHandshake() => Interlocked.Increment(ref _crossedHandshakes);

    internal void KeepaliveSent() => Interlocked.Increment(ref _keepalivesSent);

    internal void TransportSent() => Interlocked.Increment(ref _transportSent);

    internal void TransportReceived() => Interlocked.Increment(ref _transportReceived);
}
