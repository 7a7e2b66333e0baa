using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace MeshNet;

/// <summary>
/// Options for <see cref="MeshNode.StartAsync"/>. Validated and copied when the node starts
/// (changing them afterwards has no effect); an invalid value throws an
/// <see cref="ArgumentException"/> whose message names the property.
/// </summary>
public sealed class MeshNodeOptions
{
    /// <summary>The default <see cref="StartTimeout"/>: 30 seconds.</summary>
    public static readonly TimeSpan DefaultStartTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The default <see cref="ControlKeepAliveTimeout"/>: 2 minutes (the service sends keep-alives every 50-60 s).</summary>
    public static readonly TimeSpan DefaultControlKeepAliveTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The default <see cref="ControlReconnectMinDelay"/>: 1 second.</summary>
    public static readonly TimeSpan DefaultControlReconnectMinDelay = TimeSpan.FromSeconds(1);

    /// <summary>The default <see cref="ControlReconnectMaxDelay"/>: 1 minute.</summary>
    public static readonly TimeSpan DefaultControlReconnectMaxDelay = TimeSpan.FromMinutes(1);

    /// <summary>The most endpoints <see cref="AdvertisedEndpoints"/> may list.</summary>
    public const int MaxAdvertisedEndpoints = 32;

    /// <summary>The default <see cref="NetmapCacheMaxAge"/>: 30 days.</summary>
    public static readonly TimeSpan DefaultNetmapCacheMaxAge = TimeSpan.FromDays(30);

    /// <summary>The default <see cref="NetmapCacheWriteInterval"/>: 5 seconds.</summary>
    public static readonly TimeSpan DefaultNetmapCacheWriteInterval = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The coordination service (required), for example <c>https://control.example.com</c>.
    /// Plain <c>http</c> is accepted only for a loopback host (<c>localhost</c>, 127.0.0.0/8,
    /// ::1); otherwise <see cref="MeshNode.StartAsync"/> throws a <see cref="MeshException"/>
    /// with <see cref="MeshErrorCode.InvalidConfiguration"/>.
    /// </summary>
    public Uri? ControlUrl { get; set; }

    /// <summary>
    /// Further servers of the same coordination deployment (several servers sharing one database),
    /// tried when <see cref="ControlUrl"/> cannot be reached. Any of them sends the node on to the
    /// server that serves its tailnet, and the netmap lists the current servers, so one URL is
    /// enough to join; more make the first connection survive a server that is down. The same
    /// rules as <see cref="ControlUrl"/> apply to each. Default: none.
    /// </summary>
    public IReadOnlyList<Uri> ControlUrls { get; set; } = [];

    /// <summary>
    /// The auth key that admits this node into a tailnet (<c>mnkey-...</c>). Needed for the first
    /// registration (when the <see cref="StateStore"/> holds no registration, or the service no
    /// longer knows the node), and to re-authenticate after the node's key expired (the service
    /// takes an expired key back only with a valid auth key; a one-off key that was already used
    /// does not do). Never logged or shown.
    /// </summary>
    public string? AuthKey { get; set; }

    /// <summary>The host name reported to the service, from which it derives the node's DNS name. Default: the machine name.</summary>
    public string? Hostname { get; set; }

    /// <summary>Asks to be an ephemeral node (removed by the service after being offline for a while).</summary>
    public bool Ephemeral { get; set; }

    /// <summary>Tags the node asks for (for example <c>tag:web</c>); granted only as the auth key or the tailnet's policy allow.</summary>
    public IReadOnlyList<string> Tags { get; set; } = [];

    /// <summary>
    /// Where the node keeps its identity (private key, registration) between runs. Default
    /// (null): an <see cref="InMemoryStateStore"/>, so every run is a new node. Use a
    /// <see cref="FileStateStore"/> to keep the identity.
    /// </summary>
    public IMeshStateStore? StateStore { get; set; }

    /// <summary>
    /// Where the node keeps its last netmap, to restart and reach its peers without the
    /// coordination service (see <see cref="IMeshNetmapStore"/>). Default (null): none, so a node
    /// always starts from the service. Use a <see cref="FileNetmapStore"/> (next to a
    /// <see cref="FileStateStore"/>) to keep it in a file. Needs a <see cref="StateStore"/> that
    /// keeps the identity (the cache belongs to the node's key).
    /// </summary>
    public IMeshNetmapStore? NetmapStore { get; set; }

    /// <summary>
    /// False switches the netmap cache off for this node: nothing is loaded or saved, and a
    /// netmap the <see cref="NetmapStore"/> holds is deleted. Default true.
    /// </summary>
    public bool UseNetmapCache { get; set; } = true;

    /// <summary>
    /// The oldest cached netmap a cold start uses (its age is the time since it was last
    /// received); an older one is ignored and the node waits for the service, saying why in
    /// <see cref="MeshNode.GetStatus"/>. Default <see cref="DefaultNetmapCacheMaxAge"/>.
    /// </summary>
    public TimeSpan NetmapCacheMaxAge { get; set; } = DefaultNetmapCacheMaxAge;

    /// <summary>
    /// The shortest time between two writes of the netmap cache: changes in between are
    /// coalesced into one write of the latest netmap (and the last one is written when the node
    /// stops). Default <see cref="DefaultNetmapCacheWriteInterval"/>.
    /// </summary>
    public TimeSpan NetmapCacheWriteInterval { get; set; } = DefaultNetmapCacheWriteInterval;

    /// <summary>The UDP port for WireGuard; 0 (the default) picks a free port.</summary>
    public int ListenPort { get; set; }

    /// <summary>
    /// The local address the WireGuard UDP socket binds. Default (null): every address, both
    /// families (dual-stack). Tests typically use <see cref="IPAddress.Loopback"/>.
    /// </summary>
    public IPAddress? BindAddress { get; set; }

    /// <summary>
    /// The WireGuard endpoints to advertise to peers, most preferred first. Default (null): the
    /// bound address (or, when bound to every address, the machine's unicast addresses of the
    /// bound families, loopback last) with the bound port, re-read periodically and reported
    /// to the service when they change. Given explicitly (for example behind a port
    /// forward), they are advertised as they are.
    /// </summary>
    public IReadOnlyList<IPEndPoint>? AdvertisedEndpoints { get; set; }

    /// <summary>Logging; default none. Keys and the auth key are never logged.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>The clock for every timer (reconnects, keep-alive watchdog, WireGuard, TCP); default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>
    /// How long <see cref="MeshNode.StartAsync"/> may take to reach the service, register and
    /// receive the first netmap before it fails with <see cref="MeshErrorCode.ControlUnreachable"/>.
    /// Default <see cref="DefaultStartTimeout"/>; <see cref="Timeout.InfiniteTimeSpan"/> waits
    /// until the caller's token is cancelled.
    /// </summary>
    public TimeSpan StartTimeout { get; set; } = DefaultStartTimeout;

    /// <summary>
    /// The first delay before reconnecting to the service after a failure. Delays double after
    /// each consecutive failure up to <see cref="ControlReconnectMaxDelay"/>, with full jitter
    /// (each delay is uniformly random between zero and its ceiling).
    /// </summary>
    public TimeSpan ControlReconnectMinDelay { get; set; } = DefaultControlReconnectMinDelay;

    /// <summary>The ceiling of the reconnect delay (see <see cref="ControlReconnectMinDelay"/>).</summary>
    public TimeSpan ControlReconnectMaxDelay { get; set; } = DefaultControlReconnectMaxDelay;

    /// <summary>
    /// The keep-alive watchdog: when nothing (not even a keep-alive) arrives on the netmap
    /// stream for this long, the node reconnects. Default <see cref="DefaultControlKeepAliveTimeout"/>.
    /// </summary>
    public TimeSpan ControlKeepAliveTimeout { get; set; } = DefaultControlKeepAliveTimeout;

    /// <summary>
    /// Adjusts the HTTP handler used to reach the service (for example
    /// <see cref="SocketsHttpHandler.SslOptions"/> to trust a private certificate authority,
    /// or a proxy). Called once per node, on a handler the node owns and disposes.
    /// </summary>
    public Action<SocketsHttpHandler>? ConfigureControlHandler { get; set; }

    /// <summary>Test hook: the source of reconnect jitter (default <see cref="Random.Shared"/>).</summary>
    internal Random? JitterRandom { get; set; }

    /// <summary>Test hook: the stack's TCP settings (default: the stack's defaults).</summary>
    internal Userspace.Stack.TcpStackOptions? Tcp { get; set; }

    /// <summary>How often the local endpoints are re-read when <see cref="AdvertisedEndpoints"/> is not set.</summary>
    internal TimeSpan EndpointRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A shallow copy (lists copied), so that later changes by the caller do not reach a running node.</summary>
    internal MeshNodeOptions Snapshot() => new()
    {
        ControlUrl = ControlUrl,
        ControlUrls = [.. ControlUrls ?? []],
        AuthKey = AuthKey,
        Hostname = Hostname,
        Ephemeral = Ephemeral,
        Tags = Tags.Distinct(StringComparer.Ordinal).ToArray(),
        StateStore = StateStore,
        NetmapStore = NetmapStore,
        UseNetmapCache = UseNetmapCache,
        NetmapCacheMaxAge = NetmapCacheMaxAge,
        NetmapCacheWriteInterval = NetmapCacheWriteInterval,
        ListenPort = ListenPort,
        BindAddress = BindAddress,
        AdvertisedEndpoints = AdvertisedEndpoints?.Select(endpoint => new IPEndPoint(endpoint.Address, endpoint.Port)).ToArray(),
        LoggerFactory = LoggerFactory,
        TimeProvider = TimeProvider,
        StartTimeout = StartTimeout,
        ControlReconnectMinDelay = ControlReconnectMinDelay,
        ControlReconnectMaxDelay = ControlReconnectMaxDelay,
        ControlKeepAliveTimeout = ControlKeepAliveTimeout,
        ConfigureControlHandler = ConfigureControlHandler,
        JitterRandom = JitterRandom,
        EndpointRefreshInterval = EndpointRefreshInterval,
        Tcp = Tcp,
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid property.</summary>
    internal void Validate()
    {
        if (ControlUrl is null)
        {
            throw Invalid(nameof(ControlUrl), "is required.");
        }
        ValidateControlUrl(ControlUrl, nameof(ControlUrl));
        if (ControlUrls is null || ControlUrls.Count > 32)
        {
            throw Invalid(nameof(ControlUrls), "must be a list of at most 32 URLs.");
        }
        foreach (var url in ControlUrls)
        {
            if (url is null)
            {
                throw Invalid(nameof(ControlUrls), "must not contain null.");
            }
            ValidateControlUrl(url, nameof(ControlUrls));
        }
        if (AuthKey is not null && (AuthKey.Length == 0 || AuthKey.Length > 256 || AuthKey.Any(char.IsWhiteSpace)))
        {
            // Never echo the key.
            throw Invalid(nameof(AuthKey), "must be a non-empty key of at most 256 characters without white space.");
        }
        if (Hostname is not null && (string.IsNullOrWhiteSpace(Hostname) || Hostname.Length > 253 || Hostname.Any(char.IsControl)))
        {
            throw Invalid(nameof(Hostname), "must be a non-blank name of at most 253 characters without control characters.");
        }
        if (Tags is null)
        {
            throw Invalid(nameof(Tags), "must not be null (use an empty list).");
        }
        foreach (var tag in Tags)
        {
            if (string.IsNullOrEmpty(tag) || tag.Length > 128 || tag.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                throw Invalid(nameof(Tags), "must hold non-empty tags of at most 128 characters without white space.");
            }
        }
        if (ListenPort is < 0 or > ushort.MaxValue)
        {
            throw Invalid(nameof(ListenPort), $"must be between 0 and 65535, not {ListenPort}.");
        }
        if (BindAddress is not null && BindAddress.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw Invalid(nameof(BindAddress), $"must be an IPv4 or IPv6 address, not {BindAddress.AddressFamily}.");
        }
        if (AdvertisedEndpoints is not null)
        {
            if (AdvertisedEndpoints.Count > MaxAdvertisedEndpoints)
            {
                throw Invalid(nameof(AdvertisedEndpoints), $"may list at most {MaxAdvertisedEndpoints} endpoints.");
            }
            foreach (var endpoint in AdvertisedEndpoints)
            {
                if (endpoint is null || endpoint.Port == 0 || endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any)
                    || endpoint.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                {
                    throw Invalid(nameof(AdvertisedEndpoints), "must hold IPv4 or IPv6 endpoints with a specific address and a non-zero port.");
                }
            }
        }
        if (TimeProvider is null)
        {
            throw Invalid(nameof(TimeProvider), "must not be null.");
        }
        if (StartTimeout <= TimeSpan.Zero && StartTimeout != Timeout.InfiniteTimeSpan)
        {
            throw Invalid(nameof(StartTimeout), "must be positive or Timeout.InfiniteTimeSpan.");
        }
        if (ControlReconnectMinDelay <= TimeSpan.Zero || ControlReconnectMinDelay > TimeSpan.FromHours(1))
        {
            throw Invalid(nameof(ControlReconnectMinDelay), "must be positive and at most one hour.");
        }
        if (ControlReconnectMaxDelay < ControlReconnectMinDelay || ControlReconnectMaxDelay > TimeSpan.FromHours(1))
        {
            throw Invalid(nameof(ControlReconnectMaxDelay), "must be at least ControlReconnectMinDelay and at most one hour.");
        }
        if (ControlKeepAliveTimeout < TimeSpan.FromSeconds(1) || ControlKeepAliveTimeout > TimeSpan.FromHours(1))
        {
            throw Invalid(nameof(ControlKeepAliveTimeout), "must be between 1 second and 1 hour.");
        }
        if (NetmapCacheMaxAge <= TimeSpan.Zero)
        {
            throw Invalid(nameof(NetmapCacheMaxAge), "must be positive.");
        }
        if (NetmapCacheWriteInterval < TimeSpan.Zero || NetmapCacheWriteInterval > TimeSpan.FromHours(1))
        {
            throw Invalid(nameof(NetmapCacheWriteInterval), "must be between zero and one hour.");
        }
        if (EndpointRefreshInterval <= TimeSpan.Zero)
        {
            throw Invalid(nameof(EndpointRefreshInterval), "must be positive.");
        }
    }

    private static void ValidateControlUrl(Uri url, string property)
    {
        if (!url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttps && url.Scheme != Uri.UriSchemeHttp))
        {
            throw Invalid(property, "must be an absolute http or https URL.");
        }
        if (!string.IsNullOrEmpty(url.UserInfo) || !string.IsNullOrEmpty(url.Query) || !string.IsNullOrEmpty(url.Fragment) || url.AbsolutePath != "/")
        {
            throw Invalid(property, "must be a scheme, host and port only (no path, user information, query or fragment).");
        }
    }

    private static ArgumentException Invalid(string property, string problem) =>
        new($"MeshNodeOptions.{property} {problem}", property);

    /// <summary>Shows the settings, never the auth key.</summary>
    public override string ToString() =>
        $"MeshNodeOptions(ControlUrl = {ControlUrl}, Hostname = {Hostname}, AuthKey = {(AuthKey is null ? "none" : "set")}, Ephemeral = {Ephemeral}, Tags = [{string.Join(", ", Tags ?? [])}], ListenPort = {ListenPort})";
}
