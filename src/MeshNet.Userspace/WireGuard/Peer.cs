using System.Collections.Concurrent;
using System.Security.Cryptography;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// One configured peer of a device: its handshake, its sessions (previous/current/next
/// keypairs), its endpoint, the packets staged while no session is usable, its timers and
/// its traffic counters. Sending lives in Peer.Send.cs.
/// </summary>
/// <remarks>
/// Thread-safety: all members may be called concurrently. The keypair slots are guarded by
/// a private lock and read lock-free through <see cref="CurrentKeypair"/>; the endpoint is an
/// immutable box swapped atomically, so the per-packet paths take no lock for it. After
/// <see cref="Dispose"/> the peer sends nothing and its key material is zeroed.
/// </remarks>
internal sealed partial class Peer : IDisposable
{
    private readonly DeviceContext _device;
    private readonly object _keypairsLock = new();
    private Keypair? _previous;
    private Keypair? _current;
    private Keypair? _next;
    private EndpointBox _endpoint = EndpointBox.None;
    private long _persistentKeepaliveTicks;
    private long _rxBytes;
    private long _txBytes;
    private long _lastHandshakeUnixMs;
    private volatile bool _running = true;
    private int _disposed;

    public Peer(DeviceContext device, WireGuardPublicKey publicKey)
    {
        _device = device;
        PublicKey = publicKey;
        ShortKey = publicKey.ToShortString();
        publicKey.CopyTo(Handshake.RemoteStatic);
        CookieGenerator = new CookieGenerator(publicKey, device.Time);
        Timers = new PeerTimers(this, device);
    }

    public WireGuardPublicKey PublicKey { get; }

    /// <summary>A short, log-safe name for the peer.</summary>
    public string ShortKey { get; }

    public Handshake Handshake { get; } = new();

    /// <summary>
    /// Our initiation set aside when the peer's own initiation crossed it (we answered theirs in
    /// <see cref="Handshake"/>): the peer may still answer ours, and that response completes a
    /// session at once. Only an <see cref="HandshakeStage.InitiationCreated"/> state lives here;
    /// a newer initiation of ours or the zeroing of key material clears it. Lock order: a thread
    /// that holds both locks took <see cref="Handshake"/>'s first, never the reverse.
    /// </summary>
    public Handshake CrossedInitiation { get; } = new();

    public CookieGenerator CookieGenerator { get; }

    public PeerTimers Timers { get; }

    /// <summary>False once removed or disposed.</summary>
    public bool IsRunning => _running && _device.IsUp;

    /// <summary>The persistent keepalive interval; zero when off.</summary>
    public TimeSpan PersistentKeepalive
    {
        get => TimeSpan.FromTicks(Volatile.Read(ref _persistentKeepaliveTicks));
        set => Volatile.Write(ref _persistentKeepaliveTicks, value.Ticks);
    }

    /// <summary>The endpoint packets are sent to (updated by roaming); <c>default</c> when unknown.</summary>
    public NetEndpoint Endpoint => Volatile.Read(ref _endpoint).Value;

    public long ReceivedBytes => Volatile.Read(ref _rxBytes);

    public long SentBytes => Volatile.Read(ref _txBytes);

    /// <summary>Wall-clock time of the last completed handshake, or null.</summary>
    public DateTimeOffset? LastHandshake
    {
        get
        {
            long ms = Volatile.Read(ref _lastHandshakeUnixMs);
            return ms == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(ms);
        }
    }

    public bool HasPresharedKey
    {
        get
        {
            lock (Handshake.Sync)
            {
                return Handshake.PresharedKey.AsSpan().ContainsAnyExcept((byte)0);
            }
        }
    }

    public Keypair? CurrentKeypair => Volatile.Read(ref _current);

    public Keypair? NextKeypair => Volatile.Read(ref _next);

    public Keypair? PreviousKeypair => Volatile.Read(ref _previous);

    /// <summary>Sets (or clears, with null) the pre-shared key used by future handshakes.</summary>
    public void SetPresharedKey(WireGuardPresharedKey? presharedKey)
    {
        lock (Handshake.Sync)
        {
            if (presharedKey is null)
            {
                Handshake.PresharedKey.AsSpan().Clear();
            }
            else
            {
                presharedKey.ExportSecret(Handshake.PresharedKey);
            }
        }
    }

    /// <summary>Our identity changed: the static-static DH is computed again at the next handshake.</summary>
    public void InvalidateStaticStatic()
    {
        lock (Handshake.Sync)
        {
            Handshake.InvalidateStaticStatic();
        }
    }

    /// <summary>Sets the endpoint from configuration.</summary>
    public void SetEndpoint(NetEndpoint endpoint) => Volatile.Write(ref _endpoint, new EndpointBox(endpoint));

    /// <summary>
    /// Roaming: the endpoint becomes the source of the latest authenticated packet. Allocates
    /// only when the source actually changed.
    /// </summary>
    public void SetEndpointFromPacket(in NetEndpoint source)
    {
        var current = Volatile.Read(ref _endpoint);
        if (current.Value != source)
        {
            Volatile.Write(ref _endpoint, new EndpointBox(source));
        }
    }

    internal void AddReceivedBytes(int count) => Interlocked.Add(ref _rxBytes, count);

    internal void AddSentBytes(int count) => Interlocked.Add(ref _txBytes, count);

    internal void RecordHandshakeComplete() =>
        Volatile.Write(ref _lastHandshakeUnixMs, Math.Max(1, _device.Time.GetUtcNow().ToUnixTimeMilliseconds()));

    /// <summary>
    /// Installs a freshly derived session. As initiator it becomes current right away (the
    /// response proved the peer has it); as responder it waits in "next" until the first
    /// packet from the peer confirms the key (whitepaper §5.4.7 key confirmation).
    /// </summary>
    public void InstallKeypair(Keypair keypair)
    {
        Keypair? retireA = null;
        Keypair? retireB = null;
        lock (_keypairsLock)
        {
            var previous = _previous;
            var current = _current;
            var next = _next;
            if (keypair.IsInitiator)
            {
                if (next is not null)
                {
                    // A confirmed-by-us responder session never got its first packet: keep it as
                    // previous (the peer may still send on it) and drop the old current.
                    Volatile.Write(ref _next, null);
                    Volatile.Write(ref _previous, next);
                    retireA = current;
                }
                else
                {
                    Volatile.Write(ref _previous, current);
                }
                retireB = previous;
                Volatile.Write(ref _current, keypair);
            }
            else
            {
                Volatile.Write(ref _next, keypair);
                retireA = next;
                Volatile.Write(ref _previous, null);
                retireB = previous;
            }
        }
        RetireKeypair(retireA);
        RetireKeypair(retireB);
    }

    /// <summary>
    /// Called for every authenticated transport packet. When it arrived on the "next" session,
    /// that session is confirmed and rotated to current. Returns true on that rotation.
    /// </summary>
    public bool ReceivedWithKeypair(Keypair keypair)
    {
        if (Volatile.Read(ref _next) != keypair)
        {
            return false;
        }
        Keypair? retire;
        lock (_keypairsLock)
        {
            if (_next != keypair)
            {
                return false;
            }
            retire = _previous;
            Volatile.Write(ref _previous, _current);
            Volatile.Write(ref _current, keypair);
            Volatile.Write(ref _next, null);
        }
        RetireKeypair(retire);
        return true;
    }

    /// <summary>Forgets every session and the handshake in flight, zeroing their keys; drops staged packets.</summary>
    public void ZeroAndFlushAll()
    {
        Keypair? previous, current, next;
        lock (_keypairsLock)
        {
            previous = _previous;
            current = _current;
            next = _next;
            Volatile.Write(ref _previous, null);
            Volatile.Write(ref _current, null);
            Volatile.Write(ref _next, null);
        }
        RetireKeypair(previous);
        RetireKeypair(current);
        RetireKeypair(next);
        lock (Handshake.Sync)
        {
            _device.Indices.Delete(Handshake.LocalIndex);
            Handshake.Clear();
        }
        ClearCrossedInitiation();
        FlushStagedPackets(WireGuardDropReason.HandshakeGaveUp);
    }

    /// <summary>Forgets a crossed initiation of ours (its response can no longer be accepted), zeroing its copy of the pre-shared key.</summary>
    public void ClearCrossedInitiation()
    {
        lock (CrossedInitiation.Sync)
        {
            _device.Indices.Delete(CrossedInitiation.LocalIndex);
            CrossedInitiation.Clear();
            CryptographicOperations.ZeroMemory(CrossedInitiation.PresharedKey);
        }
    }

    /// <summary>
    /// Ends every session and the handshake in flight because the device's own key changed;
    /// the next packet starts a handshake at once (the initiation rate limit restarts too).
    /// </summary>
    public void ResetForNewIdentity()
    {
        ZeroAndFlushAll();
        lock (Handshake.Sync)
        {
            Handshake.LastSentHandshake = null;
        }
    }

    private void RetireKeypair(Keypair? keypair)
    {
        if (keypair is null)
        {
            return;
        }
        _device.Indices.Delete(keypair.LocalIndex);
        keypair.Retire();
    }

    /// <summary>Stops the peer: no more sending or timers; zeroes keys. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _running = false;
        Timers.Dispose();
        ZeroAndFlushAll();
        Handshake.Dispose();
        CrossedInitiation.Dispose();
        CookieGenerator.Dispose();
    }

    /// <summary>Immutable holder so the endpoint (a multi-word struct) can be swapped atomically.</summary>
    private sealed class EndpointBox(NetEndpoint value)
    {
        public static readonly EndpointBox None = new(default);

        public NetEndpoint Value { get; } = value;
    }
}
