using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using Microsoft.Extensions.Logging;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The device's static identity: our private key handle and public key. Immutable; replaced
/// as a whole when the device's key changes.
/// </summary>
internal sealed class StaticIdentity(WireGuardPrivateKey privateKey)
{
    public WireGuardPrivateKey PrivateKey { get; } = privateKey;

    public Key Key => PrivateKey.Handle;

    public WireGuardPublicKey PublicKey => PrivateKey.PublicKey;
}

/// <summary>
/// The services a device's peers and message processors share: the bind, the clock, the
/// index and routing tables, the counters, the logger. One per device; no static state, so
/// any number of devices can live in one process. The members are thread-safe.
/// </summary>
internal sealed class DeviceContext
{
    private volatile StaticIdentity _identity;

    private readonly Random _jitter;

    public DeviceContext(StaticIdentity identity, IUdpBind bind, IPacketSink sink, TimeProvider time, ILogger logger, int mtu,
        Func<Key> ephemeralKeyFactory, Random? jitter)
    {
        _jitter = jitter ?? Random.Shared;
        _identity = identity;
        Bind = bind;
        Sink = sink;
        Time = time;
        Logger = logger;
        Mtu = mtu;
        EphemeralKeyFactory = ephemeralKeyFactory;
        CookieChecker = new CookieChecker(identity.PublicKey, time);
    }

    public StaticIdentity Identity
    {
        get => _identity;
        set => _identity = value;
    }

    public IUdpBind Bind { get; }

    public IPacketSink Sink { get; }

    public TimeProvider Time { get; }

    public ILogger Logger { get; }

    public int Mtu { get; }

    public Func<Key> EphemeralKeyFactory { get; }

    /// <summary>Creates and consumes handshake messages; set once by the device after construction.</summary>
    public HandshakeProtocol Handshakes { get; set; } = null!;

    public IndexTable Indices { get; } = new();

    public AllowedIps<Peer> AllowedIps { get; } = new();

    public WireGuardDeviceCounters Counters { get; } = new();

    /// <summary>Checks MACs on handshake messages addressed to us; replaced with the identity.</summary>
    public CookieChecker CookieChecker { get; set; }

    /// <summary>False once the device is disposed: peers stop sending and scheduling.</summary>
    public volatile bool IsUp = true;

    /// <summary>Now, in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long Now() => Time.GetTimestamp();

    /// <summary>Converts a duration into <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long ToTimestampTicks(TimeSpan duration) =>
        (long)(duration.Ticks * ((double)Time.TimestampFrequency / TimeSpan.TicksPerSecond));

    /// <summary>True when less than <paramref name="duration"/> has passed since <paramref name="timestamp"/>.</summary>
    public bool IsWithin(long timestamp, TimeSpan duration, long now) => now - timestamp < ToTimestampTicks(duration);

    /// <summary>True when more than <paramref name="duration"/> has passed since <paramref name="timestamp"/>.</summary>
    public bool IsOlderThan(long timestamp, TimeSpan duration, long now) => now - timestamp > ToTimestampTicks(duration);

    /// <summary>A random jitter in [0, max) milliseconds.</summary>
    public TimeSpan Jitter(int maxMilliseconds)
    {
        if (ReferenceEquals(_jitter, Random.Shared))
        {
            return TimeSpan.FromMilliseconds(_jitter.Next(maxMilliseconds));
        }
        lock (_jitter)
        {
            return TimeSpan.FromMilliseconds(_jitter.Next(maxMilliseconds));
        }
    }
}
