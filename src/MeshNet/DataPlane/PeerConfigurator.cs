using System.Net;
using MeshNet.Diagnostics;
using MeshNet.Userspace.Crypto;
using Microsoft.Extensions.Logging;

namespace MeshNet.DataPlane;

/// <summary>
/// Keeps the WireGuard device's peers in line with the netmap, as a diff
/// (<see cref="PeerPlanner.Diff"/>): only added, changed and removed peers are touched, so
/// connections to unchanged peers never notice a netmap update. Peers whose key expires are
/// removed when the expiry passes (a timer on the <see cref="TimeProvider"/>), even when no
/// new netmap arrives.
/// </summary>
/// <remarks>Thread-safe: one lock serializes netmap updates and the expiry timer.</remarks>
internal sealed class PeerConfigurator : IDisposable
{
    private readonly IPeerTarget _target;
    private readonly TimeProvider _time;
    private readonly Func<IPEndPoint, bool> _canReach;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();

    // Guarded by _lock.
    private Dictionary<WireGuardPublicKey, DesiredPeer> _applied = [];
    private Netmap.NetmapSnapshot? _latest;
    private ITimer? _expiryTimer;
    private bool _disposed;

    public PeerConfigurator(IPeerTarget target, TimeProvider time, Func<IPEndPoint, bool> canReach, ILogger logger)
    {
        _target = target;
        _time = time;
        _canReach = canReach;
        _logger = logger;
    }

    /// <summary>The peers currently applied (a copy), for status and tests.</summary>
    public IReadOnlyDictionary<WireGuardPublicKey, DesiredPeer> Applied
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<WireGuardPublicKey, DesiredPeer>(_applied);
            }
        }
    }

    /// <summary>Brings the device in line with <paramref name="map"/>.</summary>
    public void Apply(Netmap.NetmapSnapshot map)
    {
        ArgumentNullException.ThrowIfNull(map);
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _latest = map;
            Reconcile();
        }
    }

    // Under _lock.
    private void Reconcile()
    {
        var map = _latest!;
        var desired = PeerPlanner.Desired(map, _time.GetUtcNow(), _canReach, out var nextExpiry);
        PeerPlanner.KeepKnown(_applied, desired);
        var plan = PeerPlanner.Diff(_applied, desired);
        var applied = new Dictionary<WireGuardPublicKey, DesiredPeer>(_applied);
        foreach (var key in plan.Remove)
        {
            try
            {
                _target.RemovePeer(key);
                MeshLog.PeerRemoved(_logger, key.ToShortString());
            }
            catch (ObjectDisposedException)
            {
                return; // the device is going away with the node
            }
            applied.Remove(key);
        }
        foreach (var peer in plan.Set)
        {
            try
            {
                bool known = _applied.TryGetValue(peer.Key, out var before);
                bool moved = known && before!.Endpoint is not null && !Equals(before.Endpoint, peer.Endpoint);
                if (moved)
                {
                    // A new advertised endpoint usually means the peer restarted (a new socket) or
                    // moved: its old session is gone with it, and packets sent on it would vanish
                    // until WireGuard's 15-second retry. Dropping the session here makes the next
                    // packet start a handshake at once; connections above are not disturbed.
                    _target.RemovePeer(peer.Key);
                    MeshLog.PeerSessionReset(_logger, peer.NodeId, peer.Key.ToShortString());
                }
                _target.SetPeer(peer.ToConfig());
                if (!moved && known && peer.RestartedSince(before!))
                {
                    // A new run id: the peer restarted on the same endpoint and has lost its
                    // sessions, unless it already handshook with us since (a restart from its
                    // netmap cache does). A new handshake covers both without dropping a session
                    // that may be fresh (it keeps carrying packets until the new one is confirmed).
                    _target.InitiateHandshake(peer.Key);
                    MeshLog.PeerRestarted(_logger, peer.NodeId, peer.Key.ToShortString());
                }
                applied[peer.Key] = peer;
                MeshLog.PeerConfigured(_logger, peer.NodeId, peer.Key.ToShortString(), peer.Endpoint);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (ArgumentException e)
            {
                // One bad record (a key equal to ours, an unusable value) must not keep the others out.
                MeshLog.PeerRejected(_logger, peer.NodeId, e.Message);
                applied.Remove(peer.Key);
            }
        }
        _applied = applied;
        if (!plan.IsEmpty)
        {
            MeshLog.PeersApplied(_logger, map.Sequence, plan.Set.Count, plan.Remove.Count, applied.Count);
        }
        ScheduleExpiry(nextExpiry);
    }

    // Under _lock.
    private void ScheduleExpiry(DateTimeOffset? nextExpiry)
    {
        if (nextExpiry is not { } when)
        {
            _expiryTimer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }
        var due = when - _time.GetUtcNow();
        if (due < TimeSpan.Zero)
        {
            due = TimeSpan.Zero;
        }
        // Timers take at most ~49 days; a later expiry is re-planned when this one fires.
        var max = TimeSpan.FromDays(30);
        if (due > max)
        {
            due = max;
        }
        if (_expiryTimer is null)
        {
            _expiryTimer = _time.CreateTimer(static state => ((PeerConfigurator)state!).OnExpiryTimer(), this, due, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _expiryTimer.Change(due, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnExpiryTimer()
    {
        lock (_lock)
        {
            if (_disposed || _latest is null)
            {
                return;
            }
            Reconcile();
        }
    }

    /// <summary>Stops the expiry timer. Idempotent; the device keeps its peers.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _expiryTimer?.Dispose();
            _expiryTimer = null;
        }
    }
}
