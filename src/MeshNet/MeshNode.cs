using System.Net;
using MeshNet.Control;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.State;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet;

/// <summary>
/// A node of a MeshNet tailnet inside this process: no TUN device, no root, no daemon. Start one
/// with <see cref="StartAsync"/>, then <see cref="ListenAsync"/> and
/// <see cref="DialAsync(string, int, CancellationToken)"/> on the private network as if this
/// process were a host on it.
/// </summary>
/// <remarks>
/// <para><b>Inside</b>: a userspace WireGuard device on a UDP socket, a userspace TCP/IP stack
/// holding the node's tailnet addresses, and a control client that keeps a netmap stream open
/// to the coordination service, applies its deltas, and reconfigures WireGuard peers live
/// (only the peers that changed are touched, so connections to the others never notice).
/// When the service is unreachable the node keeps working with the peers it knows and
/// reconnects in the background (exponential backoff with jitter).</para>
/// <para><b>Independence</b>: a node has no static state; any number of nodes may live in one
/// process, each with its own socket, stack, control connection and timers.</para>
/// <para><b>Thread safety</b>: every member may be called from any thread, concurrently.</para>
/// <para><b>Disposal</b> (<see cref="DisposeAsync"/>, idempotent) stops the control client,
/// closes every listener, connection and UDP socket of the node, closes the WireGuard socket,
/// stops every timer and zeroes the keys; when it returns nothing of the node is left running.
/// Operations on a disposed node throw <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed partial class MeshNode : IAsyncDisposable
{
    private readonly MeshNodeOptions _options;
    private readonly Uri _controlUrl;
    private readonly string _hostname;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly NodeRegistration _registration; // identity, keys, control connection, the node's record and tailnet
    private readonly NodeControlSession _session; // registering with retries, the map stream, endpoint reports
    private readonly NodeNetmapCache _cache; // the netmap store, and where the netmap in use came from
    private readonly NodeSockets _sockets; // listening, dialing, UDP; the open listeners

    // _dataPlane and _addresses are set while starting, then read-only. _netmap is replaced by
    // every netmap (on the start path, then on the map loop's task) and read from any thread.
    private NodeDataPlane? _dataPlane;
    private IReadOnlyList<IPAddress> _addresses = [];
    private volatile NetmapSnapshot? _netmap;
    private int _disposed;
    private Task? _disposeTask;

    private MeshNode(MeshNodeOptions options)
    {
        _options = options;
        _controlUrl = options.ControlUrl!;
        _hostname = options.Hostname ?? Environment.MachineName;
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<MeshNode>();
        _time = options.TimeProvider;
        _registration = new NodeRegistration(options, _hostname, _time, _logger,
            keyRotated: key => _dataPlane?.Device.SetPrivateKey(key),
            running: IsRunning);
        _session = new NodeControlSession(_registration, options, OnNetmap, _time, _logger);
        _cache = new NodeNetmapCache(options, () => _registration.Identity, _time, _logger);
        _sockets = new NodeSockets(this, () => Stack, _time, _logger);
    }

    /// <summary>This node's tailnet addresses (IPv4 first), fixed for the node's lifetime.</summary>
    public IReadOnlyList<IPAddress> Addresses => _addresses;

    /// <summary>This node's DNS label in the tailnet (for example <c>web</c>).</summary>
    public string Name => Self.Name;

    /// <summary>This node's fully qualified name (for example <c>web.acme.meshnet.internal</c>).</summary>
    public string Fqdn => _netmap?.FqdnOf(Self) ?? Self.Name;

    /// <summary>This node's id in its tailnet.</summary>
    public ulong NodeId => Self.Id;

    /// <summary>The tailnet this node belongs to.</summary>
    public string Tailnet => _registration.Tailnet;

    /// <summary>This node's WireGuard public key (its node key).</summary>
    public WireGuardPublicKey PublicKey => _registration.Identity.PublicKey;

    /// <summary>The UDP port of the node's WireGuard socket.</summary>
    public int ListenPort => _dataPlane!.Device.ListenPort;

    /// <summary>This node's current record: the netmap's once there is one, the registration's before.</summary>
    private NetmapNode Self => _netmap?.Self ?? _registration.Self ?? throw new InvalidOperationException("The node has not started.");

    private IpStack Stack
    {
        get
        {
            ThrowIfDisposed();
            return _dataPlane!.Stack!;
        }
    }

    /// <summary>
    /// The node of the tailnet that owns <paramref name="address"/> (a tailnet address of a
    /// peer, or of this node), from the current netmap; null when none does. Use it to learn who
    /// sent a UDP datagram. <see cref="WhoIsAsync"/> is the same lookup.
    /// </summary>
    public MeshPeerIdentity? FindPeer(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var map = _netmap;
        if (map is null)
        {
            return null;
        }
        var node = map.FindByAddress(address);
        return node is null ? null : MeshPeerIdentity.From(map, node);
    }

    /// <summary>
    /// Who is behind a tailnet address: the identity (node, names, addresses, tags, user) of the
    /// peer, or of this node, that owns <paramref name="address"/> in the current netmap; null
    /// when no node does. The answer is local (no call to the coordination service), so it
    /// completes synchronously; the token is only checked first.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public ValueTask<MeshPeerIdentity?> WhoIsAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<MeshPeerIdentity?>(cancellationToken);
        }
        return ValueTask.FromResult(FindPeer(address));
    }

    /// <summary>
    /// The addresses of the node <paramref name="host"/> names, IPv4 first (see
    /// <see cref="DialAsync(string, int, CancellationToken)"/> for the names that resolve).
    /// </summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.PeerNotFound"/>: no such node.</exception>
    public IReadOnlyList<IPAddress> ResolveAddresses(string host)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ThrowIfDisposed();
        var map = _netmap!;
        var node = NameResolver.Resolve(map, host, out _) ?? throw PeerNotFound(map, host);
        return NameResolver.OrderedAddresses(node);
    }

    /// <summary>A netmap arrived from the service (on the map loop's task): publish it, reconfigure the peers, remember it in the cache.</summary>
    private void OnNetmap(NetmapSnapshot map)
    {
        var now = _time.GetUtcNow();
        _cache.OnLiveNetmap(map, now);
        PublishNetmap(map);
        _registration.Control?.Learn(map.ControlUrls); // the deployment's servers, for the next reconnect
        _cache.Save(map, _registration.Tailnet, now); // what the node now runs on
    }

    /// <summary>Publishes a netmap (live or cached) and reconfigures the filter and the peers (a diff: unchanged peers are untouched).</summary>
    private void PublishNetmap(NetmapSnapshot map)
    {
        if (!map.Self.Addresses.ToHashSet().SetEquals(_addresses))
        {
            MeshLog.SelfAddressesChanged(_logger, string.Join(", ", map.Self.Addresses), string.Join(", ", _addresses));
        }
        _netmap = map;
        _dataPlane!.Filter.Update(map.Filter, map.FilterEnforced, map.PolicyVersion); // before the peers: new peers meet the new rules
        _dataPlane.Peers!.Apply(map);
    }

    /// <summary>Whether the node runs: its map stream exists, or it has a netmap (a start from the cache registers in the background).</summary>
    private bool IsRunning() => _session.Started || _netmap is not null;

    private MeshException PeerNotFound(NetmapSnapshot map, string host) =>
        new(MeshErrorCode.PeerNotFound, map.Domain.Length == 0
            ? $"'{host}' is not a node of tailnet {_registration.Tailnet}."
            : $"'{host}' is not a node of tailnet {_registration.Tailnet} (names resolve as 'name' or 'name.{map.Domain}').");

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>
    /// Stops the node: the control client, every listener, connection and UDP socket, the
    /// WireGuard device and its socket, every timer; zeroes the keys. Idempotent; safe to call
    /// on a node that failed half way through starting.
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _disposeTask) is { } running)
        {
            return new ValueTask(running); // a second call waits for the first to finish
        }
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (Interlocked.CompareExchange(ref _disposeTask, done.Task, null) is { } other)
        {
            return new ValueTask(other);
        }
        Volatile.Write(ref _disposed, 1);
        return new ValueTask(DisposeCoreAsync(done));
    }

    private async Task DisposeCoreAsync(TaskCompletionSource done)
    {
        string name = _netmap?.Self.Name ?? _registration.Self?.Name ?? "(not started)";
        bool confirmedLive = !_cache.OnCachedNetmap && _session.Connected;
        await Step("control", () => _session.DisposeAsync().AsTask()).ConfigureAwait(false);
        if (_netmap is { } last && confirmedLive)
        {
            // Confirmed current by the open stream just now: saved with this time, so that the
            // next start does not judge a quiet tailnet's netmap by its last change.
            _cache.Save(last, _registration.Tailnet, _time.GetUtcNow());
        }
        await Step("netmap cache", () => _cache.DisposeAsync().AsTask()).ConfigureAwait(false);
        foreach (var listener in _sockets.Listeners)
        {
            await Step("listener", () => listener.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
        if (_dataPlane is { } dataPlane)
        {
            await Step("data plane", () => dataPlane.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
        await Step("control channel", () =>
        {
            _registration.Dispose(); // the control connection, then the keys
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        MeshLog.NodeStopped(_logger, name);
        done.SetResult();
    }

    private async Task Step(string step, Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            MeshLog.DisposeStepFailed(_logger, e, step);
        }
    }

    /// <summary>The node's name and addresses.</summary>
    public override string ToString() =>
        _registration.Self is null ? "MeshNode(not started)" : $"MeshNode({Fqdn}, {string.Join(", ", _addresses)})";
}
