using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The five per-peer timers of WireGuard and the events that drive them (whitepaper §6,
/// wireguard-go timers.go): handshake retransmission with give-up, passive keepalive,
/// dead-peer detection (new handshake), key-material zeroing and persistent keepalive; and a
/// sixth of ours: a forced initiation (the peer restarted) that came too soon after the last
/// handshake message waits for the flood limit to pass instead of being dropped.
/// </summary>
/// <remarks>
/// Event methods are called on the data path and are cheap (see <see cref="PeerTimer"/>).
/// Thread-safe. After <see cref="Dispose"/> no timer fires again.
/// </remarks>
internal sealed class PeerTimers : IDisposable
{
    private readonly Peer _peer;
    private readonly DeviceContext _device;
    private readonly PeerTimer _retransmitHandshake;
    private readonly PeerTimer _sendKeepalive;
    private readonly PeerTimer _newHandshake;
    private readonly PeerTimer _zeroKeyMaterial;
    private readonly PeerTimer _persistentKeepalive;
    private readonly PeerTimer _deferredInitiation;
    private int _handshakeAttempts;
    private int _needAnotherKeepalive;
    private int _sentLastMinuteHandshake;
    private volatile bool _active = true;

    public PeerTimers(Peer peer, DeviceContext device)
    {
        _peer = peer;
        _device = device;
        _retransmitHandshake = new PeerTimer(device.Time, ExpiredRetransmitHandshake, OnTimerError);
        _sendKeepalive = new PeerTimer(device.Time, ExpiredSendKeepalive, OnTimerError);
        _newHandshake = new PeerTimer(device.Time, ExpiredNewHandshake, OnTimerError);
        _zeroKeyMaterial = new PeerTimer(device.Time, ExpiredZeroKeyMaterial, OnTimerError);
        _persistentKeepalive = new PeerTimer(device.Time, ExpiredPersistentKeepalive, OnTimerError);
        _deferredInitiation = new PeerTimer(device.Time, ExpiredDeferredInitiation, OnTimerError);
    }

    private void OnTimerError(Exception exception) => DeviceLog.TimerError(_device.Logger, exception);

    /// <summary>Handshake retries since the last first attempt.</summary>
    public int HandshakeAttempts => Volatile.Read(ref _handshakeAttempts);

    /// <summary>True once the initiator has sent its one rekey-on-receive handshake for the current session.</summary>
    public bool SentLastMinuteHandshake
    {
        get => Volatile.Read(ref _sentLastMinuteHandshake) != 0;
        set => Volatile.Write(ref _sentLastMinuteHandshake, value ? 1 : 0);
    }

    /// <summary>True while the zero-key-material timer is pending (for tests).</summary>
    internal bool ZeroKeyMaterialPending => _zeroKeyMaterial.IsPending;

    /// <summary>True while a deferred forced initiation is pending (for tests).</summary>
    internal bool DeferredInitiationPending => _deferredInitiation.IsPending;

    /// <summary>True while the retransmit timer is pending: an initiation is waiting for its response.</summary>
    internal bool RetransmitPending => _retransmitHandshake.IsPending;

    private bool Active => _active && _device.IsUp;

    /// <summary>Resets the retry count (a fresh, non-retry initiation).</summary>
    public void ResetHandshakeAttempts() => Volatile.Write(ref _handshakeAttempts, 0);

    /// <summary>Data (not a keepalive) was sent: expect an answer within 15 s + jitter.</summary>
    public void DataSent()
    {
        if (Active && !_newHandshake.IsPending)
        {
            _newHandshake.Mod(WireGuardProtocol.KeepaliveTimeout + WireGuardProtocol.RekeyTimeout +
                _device.Jitter(WireGuardProtocol.RekeyTimeoutJitterMaxMilliseconds));
        }
    }

    /// <summary>Data (not a keepalive) was received: answer with a keepalive if we send nothing for 10 s.</summary>
    public void DataReceived()
    {
        if (!Active)
        {
            return;
        }
        if (!_sendKeepalive.IsPending)
        {
            _sendKeepalive.Mod(WireGuardProtocol.KeepaliveTimeout);
        }
        else
        {
            Volatile.Write(ref _needAnotherKeepalive, 1);
        }
    }

    /// <summary>Any authenticated packet was sent: it serves as the keepalive.</summary>
    public void AnyAuthenticatedPacketSent()
    {
        if (Active)
        {
            _sendKeepalive.Del();
        }
    }

    /// <summary>Any authenticated packet was received: the peer is alive.</summary>
    public void AnyAuthenticatedPacketReceived()
    {
        if (Active)
        {
            _newHandshake.Del();
        }
    }

    /// <summary>Any authenticated packet went either way: push the persistent keepalive back.</summary>
    public void AnyAuthenticatedPacketTraversal()
    {
        TimeSpan interval = _peer.PersistentKeepalive;
        if (Active && interval > TimeSpan.Zero)
        {
            _persistentKeepalive.Mod(interval);
        }
    }

    /// <summary>An initiation was sent: retransmit after RekeyTimeout + jitter unless answered.</summary>
    public void HandshakeInitiated()
    {
        if (Active)
        {
            _retransmitHandshake.Mod(WireGuardProtocol.RekeyTimeout +
                _device.Jitter(WireGuardProtocol.RekeyTimeoutJitterMaxMilliseconds));
        }
    }

    /// <summary>
    /// A forced initiation was asked for less than the flood limit after the last handshake
    /// message: send it (forced) after <paramref name="delay"/>. A peer that restarted may
    /// have been sent that last message before it went down; dropping the request would leave
    /// us sending on a session it no longer has until the 15-second dead-peer retry.
    /// </summary>
    public void DeferInitiation(TimeSpan delay)
    {
        if (Active)
        {
            _deferredInitiation.Mod(delay);
        }
    }

    /// <summary>A handshake completed (response consumed, or first packet on the responder's new session).</summary>
    public void HandshakeComplete()
    {
        if (Active)
        {
            _retransmitHandshake.Del();
        }
        Volatile.Write(ref _handshakeAttempts, 0);
        SentLastMinuteHandshake = false;
        _peer.RecordHandshakeComplete();
    }

    /// <summary>A session was derived: zero all key material if no newer one arrives within 3 x RejectAfterTime.</summary>
    public void SessionDerived()
    {
        if (Active)
        {
            _zeroKeyMaterial.Mod(WireGuardProtocol.ZeroKeyMaterialAfter);
        }
    }

    /// <summary>Persistent keepalive was (re)configured: send one right away.</summary>
    public void PersistentKeepaliveChanged()
    {
        if (Active && _peer.PersistentKeepalive > TimeSpan.Zero)
        {
            _peer.SendKeepalive();
        }
    }

    /// <summary>Cancels every timer (peer stopped; the timers stay usable).</summary>
    public void StopAll()
    {
        _retransmitHandshake.Del();
        _sendKeepalive.Del();
        _newHandshake.Del();
        _zeroKeyMaterial.Del();
        _persistentKeepalive.Del();
        _deferredInitiation.Del();
    }

    private void ExpiredRetransmitHandshake()
    {
        if (!Active)
        {
            return;
        }
        if (Volatile.Read(ref _handshakeAttempts) > WireGuardProtocol.MaxTimerHandshakes)
        {
            DeviceLog.HandshakeGaveUp(_device.Logger, _peer.ShortKey, WireGuardProtocol.MaxTimerHandshakes + 2);
            _sendKeepalive.Del();
            // Drop everything waiting for a session, and clear residue of the partial exchange later.
            _peer.FlushStagedPackets(WireGuardDropReason.HandshakeGaveUp);
            if (!_zeroKeyMaterial.IsPending)
            {
                _zeroKeyMaterial.Mod(WireGuardProtocol.ZeroKeyMaterialAfter);
            }
            return;
        }
        int attempt = Interlocked.Increment(ref _handshakeAttempts);
        DeviceLog.HandshakeRetry(_device.Logger, _peer.ShortKey, (int)WireGuardProtocol.RekeyTimeout.TotalSeconds, attempt + 1);
        _peer.SendHandshakeInitiation(isRetry: true);
    }

    private void ExpiredSendKeepalive()
    {
        if (!Active)
        {
            return;
        }
        _peer.SendKeepalive();
        if (Interlocked.Exchange(ref _needAnotherKeepalive, 0) != 0)
        {
            _sendKeepalive.Mod(WireGuardProtocol.KeepaliveTimeout);
        }
    }

    private void ExpiredNewHandshake()
    {
        if (!Active)
        {
            return;
        }
        DeviceLog.PeerSilent(_device.Logger, _peer.ShortKey,
            (int)(WireGuardProtocol.KeepaliveTimeout + WireGuardProtocol.RekeyTimeout).TotalSeconds);
        _peer.SendHandshakeInitiation(isRetry: false);
    }

    private void ExpiredZeroKeyMaterial()
    {
        if (!Active)
        {
            return;
        }
        DeviceLog.ZeroingKeys(_device.Logger, _peer.ShortKey, (int)WireGuardProtocol.ZeroKeyMaterialAfter.TotalSeconds);
        _peer.ZeroAndFlushAll();
    }

    private void ExpiredDeferredInitiation()
    {
        if (Active)
        {
            _peer.SendHandshakeInitiation(isRetry: false, force: true);
        }
    }

    private void ExpiredPersistentKeepalive()
    {
        if (Active && _peer.PersistentKeepalive > TimeSpan.Zero)
        {
            _peer.SendKeepalive();
        }
    }

    public void Dispose()
    {
        _active = false;
        _retransmitHandshake.Dispose();
        _sendKeepalive.Dispose();
        _newHandshake.Dispose();
        _zeroKeyMaterial.Dispose();
        _persistentKeepalive.Dispose();
        _deferredInitiation.Dispose();
    }
}
