using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination;

/// <summary>
/// Options of the coordination service (<see cref="CoordinationServiceCollectionExtensions.AddMeshNetCoordination"/>).
/// Validated when the service is added; an invalid value throws an <see cref="ArgumentException"/>
/// naming the property.
/// </summary>
public sealed class CoordinationOptions
{
    /// <summary>
    /// The SQLite database file (created with its directory on first start). Exactly one of
    /// <see cref="DatabasePath"/> and <see cref="ConnectionString"/> is required, unless an
    /// <see cref="ICoordinationStore"/> is registered in the service collection before
    /// <c>AddMeshNetCoordination</c> is called.
    /// </summary>
    public string? DatabasePath { get; set; }

    /// <summary>A SQLite connection string, instead of <see cref="DatabasePath"/>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// The bearer token of the Admin API (required, at least 16 characters). Compared in
    /// constant time; never logged.
    /// </summary>
    public string? AdminToken { get; set; }

    /// <summary>How long an ephemeral node may stay offline before it is removed; default 5 minutes.</summary>
    public TimeSpan EphemeralNodeTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The interval of map-stream keep-alives, sent with ±10% jitter; default 50 seconds.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(50);

    /// <summary>
    /// How long a disconnected map session (its replay buffer) is kept so that the node can
    /// resume without a full netmap; default 2 minutes.
    /// </summary>
    public TimeSpan MapSessionRetention { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How many deltas each map session keeps for resume (default 256). A client that missed
    /// more gets a new full netmap.
    /// </summary>
    public int MapReplayBufferSize { get; set; } = 256;

    /// <summary>
    /// How many messages may wait to be sent on one map stream (default 256). A client that
    /// falls further behind is disconnected (it resumes, or gets a full netmap) instead of the
    /// server buffering without bound.
    /// </summary>
    public int MapSendQueueSize { get; set; } = 256;

    /// <summary>How far a call's timestamp may be from the server clock; default 2 minutes.</summary>
    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The node-key lifetime of tailnets created without one; default 180 days.</summary>
    public TimeSpan DefaultNodeKeyLifetime { get; set; } = TimeSpan.FromDays(180);

    /// <summary>The lifetime of auth keys created without one; default 24 hours.</summary>
    public TimeSpan DefaultAuthKeyLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The DNS suffix of tailnets created without a domain: <c>&lt;tailnet&gt;.&lt;suffix&gt;</c>; default <c>meshnet.internal</c>.</summary>
    public string DomainSuffix { get; set; } = "meshnet.internal";

    /// <summary>The largest request message accepted, in bytes (default 64 KiB); larger ones are refused by gRPC.</summary>
    public int MaxRequestSize { get; set; } = 64 * 1024;

    /// <summary>
    /// How many call nonces are remembered for replay protection (default 200,000). Each is kept
    /// only while its timestamp is within <see cref="MaxClockSkew"/>; when the cache is full of
    /// live nonces, new calls are refused (ResourceExhausted) rather than forgetting one.
    /// </summary>
    public int NonceCacheCapacity { get; set; } = 200_000;

    /// <summary>How many derived proof keys are cached, one per node key (default 10,000).</summary>
    public int ProofKeyCacheCapacity { get; set; } = 10_000;

    /// <summary>
    /// How often ephemeral-node removal, key expiry and session retention are checked
    /// (default 10 seconds). A clock that jumps ahead gives one pass, not one per interval.
    /// </summary>
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// This server's id in a deployment of several servers sharing one database (letters, digits,
    /// '-', '_' and '.', at most 64). Required when the store is not SQLite; a SQLite server is
    /// alone and defaults to <c>embedded</c>. Two processes must never run with the same id at
    /// once: the newer takes the older's tailnets.
    /// </summary>
    public string? ServerId { get; set; }

    /// <summary>
    /// The URL nodes and the other servers reach this server at: redirects name it. Default: the
    /// first address the host listens on (https preferred), which only suits a single server or a
    /// test on one machine.
    /// </summary>
    public string? AdvertisedUrl { get; set; }

    /// <summary>
    /// How long a tailnet's lease lasts without renewal, by the database's clock (default 5 seconds):
    /// the longest a dead server's tailnets go unserved before a standby takes them over.
    /// </summary>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a server renews every lease it holds, in one statement (default 1 second).</summary>
    public TimeSpan LeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long before its lease could expire a server stops serving a tailnet it could not renew
    /// (default 0.5 seconds): covers the difference between the server's monotonic clock and the
    /// database's.
    /// </summary>
    public TimeSpan LeaseSafetyMargin { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How often a server looks for expired leases to take over (default 250 ms).</summary>
    public TimeSpan LeaseClaimInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>At most this many leases per claim round (default 16), so standbys share a failed server's tailnets.</summary>
    public int LeaseClaimLimit { get; set; } = 16;

    /// <summary>
    /// A tailnet whose owners died twice within this window while taking it on is quarantined
    /// (default 10 minutes; zero disables quarantine).
    /// </summary>
    public TimeSpan QuarantineWindow { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long after a tailnet is loaded (a takeover, a move, a restart) a node marked online may
    /// stay without a stream before it is written offline (default 30 seconds).
    /// </summary>
    public TimeSpan ReconnectGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long change-log entries are kept (default 1 hour; the newest 1,000 of each tailnet are
    /// always kept): a node that was away longer resumes with a full netmap.
    /// </summary>
    public TimeSpan ChangeLogRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// When a tailnet is handed over to another server, its map streams are ended with a redirect
    /// at random moments within this window (default 100 ms), so that its nodes reach the new owner
    /// spread out rather than all at once.
    /// </summary>
    public TimeSpan RedirectSpread { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long an ownership change is measured (which of the nodes the old owner had come back,
    /// and when) before its incident part is closed with whatever came back (default 60 seconds).
    /// </summary>
    public TimeSpan IncidentTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How many changes per second one tailnet may make (registrations, endpoint reports, policy and
    /// key changes; default 500): a tailnet flooding changes is refused with RateLimited and a retry
    /// time before it can take the server's time from the others.
    /// </summary>
    public double TailnetChangesPerSecond { get; set; } = 500;

    /// <summary>How many changes one tailnet may make at once, above its rate (default 2,000).</summary>
    public int TailnetChangeBurst { get; set; } = 2000;

    /// <summary>How many map streams one tailnet may have open on a server (default 100,000).</summary>
    public int MaxStreamsPerTailnet { get; set; } = 100_000;

    /// <summary>
    /// How many bytes of messages one tailnet's streams may hold queued (default 64 MiB); a stream
    /// whose message would exceed it is dropped as too slow (its node resumes).
    /// </summary>
    public long MaxQueuedBytesPerTailnet { get; set; } = 64L << 20;

    /// <summary>
    /// How often the rebalancer (run by one server at a time) evens out the servers' load by moving
    /// tailnets (default 15 seconds; zero turns rebalancing off on this server).
    /// </summary>
    public TimeSpan RebalanceInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A tailnet is not moved again by the rebalancer within this time of its last move (default 5 minutes).</summary>
    public TimeSpan RebalanceCooldown { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How far above the mean (a fraction of it) a server's load may be, and above the least loaded
    /// server's, before the rebalancer moves anything (default 0.05).
    /// </summary>
    public double RebalanceHysteresis { get; set; } = 0.05;

    /// <summary>
    /// The time constant of the per-tailnet change-rate average the rebalancer weighs (default 30
    /// seconds): longer smooths bursts such as many nodes joining at once, shorter follows changes
    /// in load sooner.
    /// </summary>
    public TimeSpan RebalanceLoadWindow { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Makes the HTTP handler this server uses to call the other servers (forwarded admin writes,
    /// handovers), e.g. to trust a private certificate. Default: a plain <see cref="SocketsHttpHandler"/>.
    /// </summary>
    public Func<HttpMessageHandler>? PeerHandlerFactory { get; set; }

    /// <summary>
    /// The clock of every timestamp, expiry and timer. Null (the default) takes the
    /// <see cref="System.TimeProvider"/> registered in the service collection, or the system clock.
    /// </summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>Test hook: the source of keep-alive jitter (default: a shared generator).</summary>
    internal Random? JitterRandom { get; set; }

    /// <summary>Checks every property; throws naming the first bad one.</summary>
    /// <param name="storeRegistered">True when an <see cref="ICoordinationStore"/> is already registered.</param>
    internal void Validate(bool storeRegistered)
    {
        bool hasPath = !string.IsNullOrWhiteSpace(DatabasePath);
        bool hasConnection = !string.IsNullOrWhiteSpace(ConnectionString);
        if (hasPath && hasConnection)
        {
            throw new ArgumentException("CoordinationOptions.DatabasePath and CoordinationOptions.ConnectionString are exclusive; set one.", nameof(DatabasePath));
        }
        if (!hasPath && !hasConnection && !storeRegistered)
        {
            throw new ArgumentException("CoordinationOptions.DatabasePath (or ConnectionString) is required when no ICoordinationStore is registered.", nameof(DatabasePath));
        }
        if (AdminToken is null || AdminToken.Length < 16 || string.IsNullOrWhiteSpace(AdminToken))
        {
            throw new ArgumentException("CoordinationOptions.AdminToken is required and must be at least 16 characters.", nameof(AdminToken));
        }
        RequirePositive(EphemeralNodeTimeout, nameof(EphemeralNodeTimeout));
        RequireRange(KeepAliveInterval, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(KeepAliveInterval));
        RequirePositive(MapSessionRetention, nameof(MapSessionRetention));
        RequireRange(MapReplayBufferSize, 1, 1_000_000, nameof(MapReplayBufferSize));
        RequireRange(MapSendQueueSize, 1, 1_000_000, nameof(MapSendQueueSize));
        RequireRange(MaxClockSkew, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(MaxClockSkew));
        RequireRange(DefaultNodeKeyLifetime, TimeSpan.FromMinutes(1), TimeSpan.FromDays(3650), nameof(DefaultNodeKeyLifetime));
        RequireRange(DefaultAuthKeyLifetime, TimeSpan.FromSeconds(1), TimeSpan.FromDays(3650), nameof(DefaultAuthKeyLifetime));
        if (DomainSuffix is null || !Validation.Names.IsDnsName(DomainSuffix))
        {
            throw new ArgumentException($"CoordinationOptions.DomainSuffix must be a DNS name, not '{DomainSuffix}'.", nameof(DomainSuffix));
        }
        RequireRange(MaxRequestSize, 1024, 16 * 1024 * 1024, nameof(MaxRequestSize));
        RequireRange(NonceCacheCapacity, 1, 100_000_000, nameof(NonceCacheCapacity));
        RequireRange(ProofKeyCacheCapacity, 1, 10_000_000, nameof(ProofKeyCacheCapacity));
        RequireRange(MaintenanceInterval, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1), nameof(MaintenanceInterval));
        if (ServerId is not null && !IsServerId(ServerId))
        {
            throw new ArgumentException($"CoordinationOptions.ServerId must be 1-64 letters, digits, '-', '_' or '.', not '{ServerId}'.", nameof(ServerId));
        }
        if (AdvertisedUrl is not null && (!Uri.TryCreate(AdvertisedUrl, UriKind.Absolute, out var advertised) ||
            advertised.Scheme is not ("http" or "https")))
        {
            throw new ArgumentException($"CoordinationOptions.AdvertisedUrl must be an absolute http:// or https:// URL, not '{AdvertisedUrl}'.", nameof(AdvertisedUrl));
        }
        RequireRange(LeaseTtl, TimeSpan.FromMilliseconds(200), TimeSpan.FromMinutes(10), nameof(LeaseTtl));
        RequireRange(LeaseSafetyMargin, TimeSpan.FromMilliseconds(10), LeaseTtl / 2, nameof(LeaseSafetyMargin));
        // Two renewals fit in what the margin leaves, so that one lost renewal never lapses a lease.
        RequireRange(LeaseRenewInterval, TimeSpan.FromMilliseconds(20), (LeaseTtl - LeaseSafetyMargin) / 2, nameof(LeaseRenewInterval));
        RequireRange(LeaseClaimInterval, TimeSpan.FromMilliseconds(10), LeaseTtl, nameof(LeaseClaimInterval));
        RequireRange(LeaseClaimLimit, 1, 10_000, nameof(LeaseClaimLimit));
        RequireRange(QuarantineWindow, TimeSpan.Zero, TimeSpan.FromDays(1), nameof(QuarantineWindow));
        RequireRange(ReconnectGrace, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(ReconnectGrace));
        RequireRange(ChangeLogRetention, TimeSpan.FromMinutes(1), TimeSpan.FromDays(365), nameof(ChangeLogRetention));
        RequireRange(RedirectSpread, TimeSpan.Zero, TimeSpan.FromSeconds(10), nameof(RedirectSpread));
        RequireRange(IncidentTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(IncidentTimeout));
        if (!(TailnetChangesPerSecond > 0 && TailnetChangesPerSecond <= 1_000_000))
        {
            throw new ArgumentException($"CoordinationOptions.TailnetChangesPerSecond must be between 0 (excluded) and 1,000,000, not {TailnetChangesPerSecond}.",
                nameof(TailnetChangesPerSecond));
        }
        RequireRange(TailnetChangeBurst, 1, 10_000_000, nameof(TailnetChangeBurst));
        RequireRange(MaxStreamsPerTailnet, 1, 10_000_000, nameof(MaxStreamsPerTailnet));
        if (MaxQueuedBytesPerTailnet < 64 * 1024)
        {
            throw new ArgumentException($"CoordinationOptions.MaxQueuedBytesPerTailnet must be at least 64 KiB, not {MaxQueuedBytesPerTailnet}.",
                nameof(MaxQueuedBytesPerTailnet));
        }
        RequireRange(RebalanceInterval, TimeSpan.Zero, TimeSpan.FromHours(1), nameof(RebalanceInterval));
        RequireRange(RebalanceCooldown, TimeSpan.Zero, TimeSpan.FromDays(1), nameof(RebalanceCooldown));
        RequireRange(RebalanceLoadWindow, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(RebalanceLoadWindow));
        if (!(RebalanceHysteresis >= 0 && RebalanceHysteresis <= 1))
        {
            throw new ArgumentException($"CoordinationOptions.RebalanceHysteresis must be between 0 and 1, not {RebalanceHysteresis}.", nameof(RebalanceHysteresis));
        }
    }

    private static bool IsServerId(string id) =>
        id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    private static void RequirePositive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"CoordinationOptions.{name} must be positive, not {value}.", name);
        }
    }

    private static void RequireRange(TimeSpan value, TimeSpan min, TimeSpan max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentException($"CoordinationOptions.{name} must be between {min} and {max}, not {value}.", name);
        }
    }

    private static void RequireRange(int value, int min, int max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentException($"CoordinationOptions.{name} must be between {min} and {max}, not {value}.", name);
        }
    }
}
