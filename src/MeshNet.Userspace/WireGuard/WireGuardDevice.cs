using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NSec.Cryptography;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// A userspace WireGuard interface. It does no I/O of its own: it exchanges encrypted
/// datagrams through an <see cref="IUdpBind"/> and plaintext IP packets with an
/// <see cref="IPacketSink"/> (inbound) and through <see cref="WritePacket"/> (outbound).
/// Interoperates with wireguard-go and the Linux implementation.
/// </summary>
/// <remarks>
/// <para>Thread safety: every public member may be called from any thread, concurrently.
/// Peers can be added, changed and removed while traffic flows.</para>
/// <para>Threads: received datagrams are handled on the bind's receive thread (transport
/// messages are decrypted there and handed to the sink); handshake messages go through a
/// bounded queue to one background worker, so a handshake flood cannot stall data and the
/// device can detect that it is under load. Timers run on the <see cref="TimeProvider"/>.</para>
/// <para>Disposal closes the bind, stops the worker and every timer, and zeroes all key
/// material; afterwards <see cref="WritePacket"/> drops packets and configuration calls throw
/// <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed partial class WireGuardDevice : IPacketSink, IAsyncDisposable, IDisposable
{
    private readonly DeviceContext _context;
    private readonly ConcurrentDictionary<WireGuardPublicKey, Peer> _peers = new();
    private readonly object _configLock = new();
    private readonly Channel<QueuedHandshake> _handshakeQueue;
    private readonly HandshakeRateLimiter _rateLimiter;
    private readonly Receiver _receiver;
    private readonly CancellationTokenSource _stopping = new();
    private readonly bool _manualHandshakes;
    private Task _worker = Task.CompletedTask;
    private long _underLoadUntil = long.MinValue;
    private int _disposed;

    private WireGuardDevice(WireGuardDeviceOptions options, WireGuardPrivateKey privateKey)
    {
        var logger = options.LoggerFactory?.CreateLogger<WireGuardDevice>() ?? (ILogger)NullLogger.Instance;
        var ephemeral = options.EphemeralKeyFactory ?? CreateEphemeralKey;
        _context = new DeviceContext(new StaticIdentity(privateKey), options.Bind!, options.InboundSink!,
            options.TimeProvider, logger, options.Mtu, ephemeral, options.JitterRandom);
        _context.Handshakes = new HandshakeProtocol(_context, LookupPeer);
        _handshakeQueue = Channel.CreateBounded<QueuedHandshake>(new BoundedChannelOptions(WireGuardProtocol.HandshakeQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _rateLimiter = new HandshakeRateLimiter(options.TimeProvider);
        _receiver = new Receiver(this);
        _manualHandshakes = options.ManualHandshakeProcessing;
    }

    /// <summary>
    /// Creates a device, opens its bind on <see cref="WireGuardDeviceOptions.ListenPort"/> and
    /// starts processing. The device has no peers until <see cref="SetPeer"/> is called.
    /// </summary>
    /// <exception cref="ArgumentException">An option is missing or invalid (the message names it).</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The port cannot be bound.</exception>
    public static ValueTask<WireGuardDevice> StartAsync(WireGuardDeviceOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();

        var key = CopyPrivateKey(options.PrivateKey!);
        var device = new WireGuardDevice(options, key);
        try
        {
            device.ListenPort = device._context.Bind.Open(options.ListenPort, device._receiver);
            if (!device._manualHandshakes)
            {
                device._worker = Task.Run(device.RunHandshakeWorkerAsync);
            }
            DeviceLog.Started(device._context.Logger, device.PublicKey.ToShortString(), device.ListenPort);
            return ValueTask.FromResult(device);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>The device's public key.</summary>
    public WireGuardPublicKey PublicKey => _context.Identity.PublicKey;

    /// <summary>The UDP port the bind is listening on.</summary>
    public ushort ListenPort { get; private set; }

    /// <summary>The tunnel MTU.</summary>
    public int Mtu => _context.Mtu;

    /// <summary>Drop and event counters.</summary>
    public WireGuardDeviceCounters Counters => _context.Counters;

    /// <summary>
    /// Moves the device to another UDP port (0 picks a free one). Sessions survive: peers see
    /// the new source port on the next packet and roam to it.
    /// </summary>
    /// <returns>The port now bound.</returns>
    public ushort SetListenPort(ushort port)
    {
        lock (_configLock)
        {
            ThrowIfDisposed();
            ListenPort = _context.Bind.Open(port, _receiver);
            DeviceLog.Rebound(_context.Logger, ListenPort);
            return ListenPort;
        }
    }

    /// <summary>
    /// Adds a peer, or changes an existing one in place (endpoint, allowed IPs, keepalive,
    /// pre-shared key) without disturbing its sessions. A peer that gets its first endpoint
    /// while a handshake with it is under way (packets waiting for a session) is sent an
    /// initiation at once: the earlier one had nowhere to go, and the retry would come only
    /// after RekeyTimeout (5 s).
    /// </summary>
    /// <exception cref="ArgumentException">The key is the device's own, or a value is out of range.</exception>
    public void SetPeer(WireGuardPeerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.PublicKey.IsZero())
        {
            throw new ArgumentException("A peer's public key must not be all zero.", nameof(config));
        }
        var keepalive = config.PersistentKeepalive ?? TimeSpan.Zero;
        if (keepalive < TimeSpan.Zero || keepalive > TimeSpan.FromSeconds(ushort.MaxValue))
        {
            throw new ArgumentException("PersistentKeepalive must be between 0 and 65535 seconds.", nameof(config));
        }
        foreach (var prefix in config.AllowedIps)
        {
            if (prefix.BaseAddress is null)
            {
                throw new ArgumentException("AllowedIps contains an empty prefix.", nameof(config));
            }
        }
        Peer? initiate = null;
        lock (_configLock)
        {
            ThrowIfDisposed();
            if (config.PublicKey.Equals(PublicKey))
            {
                throw new ArgumentException("A peer cannot have the device's own public key.", nameof(config));
            }
            var peer = _peers.GetOrAdd(config.PublicKey, key => new Peer(_context, key));
            if (config.Endpoint is not null)
            {
                if (peer.Endpoint.IsEmpty && (peer.StagedCount > 0 || peer.Timers.RetransmitPending))
                {
                    initiate = peer;
                }
                peer.SetEndpoint(NetEndpoint.FromIPEndPoint(config.Endpoint));
            }
            peer.SetPresharedKey(config.PresharedKey);
            _context.AllowedIps.ReplaceForValue(peer, config.AllowedIps);
            bool keepaliveChanged = peer.PersistentKeepalive != keepalive;
            peer.PersistentKeepalive = keepalive;
            DeviceLog.PeerConfigured(_context.Logger, peer.ShortKey);
            if (keepaliveChanged)
            {
                peer.Timers.PersistentKeepaliveChanged();
            }
        }
        // Outside the lock: an initiation costs two Diffie-Hellman operations.
        initiate?.SendHandshakeInitiation(isRetry: false, force: true);
    }

    /// <summary>
    /// Starts a handshake with a configured peer now instead of at the first packet for it (at
    /// most one initiation per RekeyTimeout, as always). A device that restarted uses it to hand
    /// its peers a new session at once: a peer still holding a session from before the restart
    /// would otherwise send on it, unheard, until WireGuard's own retry some 15 seconds later.
    /// </summary>
    /// <param name="publicKey">The peer.</param>
    /// <param name="evenIfRecent">
    /// Also when an initiation or response was sent less than RekeyTimeout (5 s) ago (but not
    /// within 20 ms, which the peer would refuse as a flood): for a peer known to have restarted
    /// since, whose earlier sessions are gone. The current session keeps carrying packets until
    /// the new one is confirmed.
    /// </param>
    /// <returns>False when no such peer is configured.</returns>
    /// <exception cref="ObjectDisposedException">The device has been disposed.</exception>
    public bool InitiateHandshake(WireGuardPublicKey publicKey, bool evenIfRecent = false)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        ThrowIfDisposed();
        if (!_peers.TryGetValue(publicKey, out var peer))
        {
            return false;
        }
        peer.SendHandshakeInitiation(isRetry: false, force: evenIfRecent);
        return true;
    }

    /// <summary>Removes a peer, ending its sessions and zeroing their keys.</summary>
    /// <returns>False when no such peer was configured.</returns>
    public bool RemovePeer(WireGuardPublicKey publicKey)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        lock (_configLock)
        {
            ThrowIfDisposed();
            if (!_peers.TryRemove(publicKey, out var peer))
            {
                return false;
            }
            _context.AllowedIps.RemoveByValue(peer);
            peer.Dispose();
            DeviceLog.PeerRemoved(_context.Logger, peer.ShortKey);
            return true;
        }
    }

    /// <summary>
    /// Replaces the device's private key. Every session ends and the next packet to each peer
    /// starts a new handshake under the new identity. A peer whose public key equals the new
    /// public key is removed. The device keeps its own copy of <paramref name="privateKey"/>.
    /// </summary>
    public void SetPrivateKey(WireGuardPrivateKey privateKey)
    {
        ArgumentNullException.ThrowIfNull(privateKey);
        lock (_configLock)
        {
            ThrowIfDisposed();
            var old = _context.Identity;
            var oldChecker = _context.CookieChecker;
            var identity = new StaticIdentity(CopyPrivateKey(privateKey));
            _context.Identity = identity;
            _context.CookieChecker = new CookieChecker(identity.PublicKey, _context.Time);
            if (_peers.TryRemove(identity.PublicKey, out var self))
            {
                _context.AllowedIps.RemoveByValue(self);
                self.Dispose();
            }
            foreach (var peer in _peers.Values)
            {
                peer.InvalidateStaticStatic();
                peer.ResetForNewIdentity();
            }
            DeviceLog.PrivateKeyChanged(_context.Logger);
            // The previous identity may still be in use by a handshake being processed right
            // now: zero it once nothing can be using it any more.
            _ = RetireIdentityLaterAsync(old, oldChecker);
        }
    }

    /// <summary>A snapshot of every peer.</summary>
    public IReadOnlyList<WireGuardPeerStatus> GetPeers() =>
        _peers.Values.Select(BuildStatus).OrderBy(status => status.PublicKey.ToBase64(), StringComparer.Ordinal).ToArray();

    /// <summary>A snapshot of one peer, or null when it is not configured.</summary>
    public WireGuardPeerStatus? GetPeer(WireGuardPublicKey publicKey)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        return _peers.TryGetValue(publicKey, out var peer) ? BuildStatus(peer) : null;
    }

    /// <summary>
    /// Sends one IP packet into the tunnel: the peer whose allowed IPs hold the destination
    /// receives it, encrypted. Packets with no matching peer, malformed packets and packets
    /// written after disposal are dropped and counted; this method never throws for them.
    /// Safe to call from many threads; <paramref name="packet"/> is copied before returning.
    /// </summary>
    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        if (!_context.IsUp)
        {
            _context.Counters.Drop(WireGuardDropReason.DeviceDown);
            return;
        }
        if (!InnerPacket.TryGetDestination(packet, out var destination))
        {
            _context.Counters.Drop(WireGuardDropReason.InvalidOutboundPacket);
            return;
        }
        var peer = _context.AllowedIps.Lookup(destination);
        if (peer is null)
        {
            _context.Counters.Drop(WireGuardDropReason.NoRoute);
            return;
        }
        peer.SendPacket(packet);
    }

    internal Peer? LookupPeer(WireGuardPublicKey publicKey) => _peers.TryGetValue(publicKey, out var peer) ? peer : null;

    /// <summary>True when a local index is in use (for tests).</summary>
    internal bool IsIndexInUse(uint index) => _context.Indices.TryLookup(index, out _);

    /// <summary>The device's handshake protocol (tests drive it directly to reach interleavings timers make rare).</summary>
    internal HandshakeProtocol Handshakes => _context.Handshakes;

    internal DeviceContext Context => _context;

    private WireGuardPeerStatus BuildStatus(Peer peer)
    {
        var endpoint = peer.Endpoint;
        var keepalive = peer.PersistentKeepalive;
        return new WireGuardPeerStatus(
            peer.PublicKey,
            endpoint.IsEmpty ? null : endpoint.ToIPEndPoint(),
            _context.AllowedIps.PrefixesOf(peer),
            peer.LastHandshake,
            peer.ReceivedBytes,
            peer.SentBytes,
            keepalive > TimeSpan.Zero ? keepalive : null,
            peer.HasPresharedKey);
    }

    private static Key CreateEphemeralKey() => Key.Create(KeyAgreementAlgorithm.X25519);

    private static WireGuardPrivateKey CopyPrivateKey(WireGuardPrivateKey source)
    {
        Span<byte> secret = stackalloc byte[WireGuardPrivateKey.Size];
        try
        {
            source.ExportSecret(secret);
            return WireGuardPrivateKey.FromBytes(secret);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
        }
    }

    private async Task RetireIdentityLaterAsync(StaticIdentity identity, CookieChecker checker)
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(5), _context.Time, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        identity.PrivateKey.Dispose();
        checker.Dispose();
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Stops the device and zeroes all key material. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!BeginDispose())
        {
            return;
        }
        try
        {
            await _worker.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        FinishDispose();
    }

    /// <summary>Stops the device and zeroes all key material. Idempotent.</summary>
    public void Dispose()
    {
        if (!BeginDispose())
        {
            return;
        }
        try
        {
            _worker.Wait(TimeSpan.FromSeconds(10));
        }
        catch (AggregateException)
        {
        }
        FinishDispose();
    }

    private bool BeginDispose()
    {
        lock (_configLock)
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return false;
            }
            _context.IsUp = false;
        }
        _context.Bind.Close();
        _handshakeQueue.Writer.TryComplete();
        _stopping.Cancel();
        return true;
    }

    private void FinishDispose()
    {
        while (_handshakeQueue.Reader.TryRead(out var queued))
        {
            queued.Return();
        }
        lock (_configLock)
        {
            foreach (var peer in _peers.Values)
            {
                peer.Dispose();
            }
            _peers.Clear();
        }
        _rateLimiter.Dispose();
        _context.Bind.Dispose();
        DeviceLog.Stopped(_context.Logger, PublicKey.ToShortString());
        _context.Identity.PrivateKey.Dispose();
        _context.CookieChecker.Dispose();
        _stopping.Dispose();
    }

    /// <summary>Keeps <see cref="IDatagramReceiver"/> off the device's public surface.</summary>
    private sealed class Receiver(WireGuardDevice device) : IDatagramReceiver
    {
        public void OnDatagram(Span<byte> datagram, in NetEndpoint source) => device.ReceiveDatagram(datagram, source);
    }
}
