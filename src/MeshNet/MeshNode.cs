using System.Collections.Concurrent;
using System.Net;
using MeshNet.Control;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
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
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ReconnectBackoff _backoff;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<MeshListener, byte> _listeners = new();
    private readonly List<ControlSigner> _retiredSigners = [];
    private readonly SemaphoreSlim _rotation = new(1, 1);

    // This run's id, sent with every map stream: peers that see it change know the node
    // restarted (and lost its WireGuard sessions), even when its key and port are the same.
    private readonly string _instance = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    // Set while starting, then read-only, except: the identity and signer, which a key rotation
    // replaces (on the start path, or later on the map loop's task); and on a start from the
    // netmap cache, the control side (registration, _mapLoop, _endpoints and their tasks), which
    // the background connect sets once registered. GetStatus reads _mapLoop and _endpoints from
    // any thread, hence volatile.
    private volatile MeshNodeIdentity? _identity;
    private ControlClient? _control;
    private volatile ControlSigner? _signer;
    private volatile byte[] _serverKey = [];
    private NodeDataPlane? _dataPlane;
    private volatile MapStreamLoop? _mapLoop;
    private volatile EndpointReporter? _endpoints;
    private Task _mapTask = Task.CompletedTask;
    private Task _endpointTask = Task.CompletedTask;
    private string _tailnet = "";
    private NetmapNode? _registeredSelf;
    private IReadOnlyList<IPAddress> _addresses = [];
    private InMemoryStateStore? _ownedStore;

    private volatile NetmapSnapshot? _netmap;
    private int _disposed;
    private Task? _disposeTask;

    private MeshNode(MeshNodeOptions options)
    {
        _options = options;
        _controlUrl = options.ControlUrl!;
        _hostname = options.Hostname ?? Environment.MachineName;
        _loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<MeshNode>();
        _time = options.TimeProvider;
        _backoff = new ReconnectBackoff(options.ControlReconnectMinDelay, options.ControlReconnectMaxDelay, options.JitterRandom);
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
    public string Tailnet => _tailnet;

    /// <summary>This node's WireGuard public key (its node key).</summary>
    public WireGuardPublicKey PublicKey => _identity!.PublicKey;

    /// <summary>The UDP port of the node's WireGuard socket.</summary>
    public int ListenPort => _dataPlane!.Device.ListenPort;

    /// <summary>This node's current record: the netmap's once there is one, the registration's before.</summary>
    private NetmapNode Self => _netmap?.Self ?? _registeredSelf ?? throw new InvalidOperationException("The node has not started.");

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

    internal void OnListenerClosed(MeshListener listener) => _listeners.TryRemove(listener, out _);

    /// <summary>A netmap arrived from the service (on the map loop's task): publish it, reconfigure the peers, remember it in the cache.</summary>
    private void OnNetmap(NetmapSnapshot map)
    {
        var now = _time.GetUtcNow();
        Interlocked.Exchange(ref _netmapReceivedTicks, now.UtcTicks);
        if (_onCachedNetmap)
        {
            _onCachedNetmap = false;
            MeshLog.LiveNetmapReplacedCache(_logger, map.Peers.Count);
        }
        PublishNetmap(map);
        _control?.Learn(map.ControlUrls); // the deployment's servers, for the next reconnect
        _cacheWriter?.OnNetmap(map, _tailnet, now); // what the node now runs on
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

    private MeshException PeerNotFound(NetmapSnapshot map, string host) =>
        new(MeshErrorCode.PeerNotFound, map.Domain.Length == 0
            ? $"'{host}' is not a node of tailnet {_tailnet}."
            : $"'{host}' is not a node of tailnet {_tailnet} (names resolve as 'name' or 'name.{map.Domain}').");

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
        string name = _netmap?.Self.Name ?? _registeredSelf?.Name ?? "(not started)";
        bool confirmedLive = !_onCachedNetmap && _mapLoop is { Connected: true };
        _stopping.Cancel();
        await Step("control", async () =>
        {
            await _connectTask.ConfigureAwait(false); // sets the loops' tasks before it completes
            await _mapTask.ConfigureAwait(false);
            await _endpointTask.ConfigureAwait(false);
        }).ConfigureAwait(false);
        if (_cacheWriter is { } writer)
        {
            if (_netmap is { } last && confirmedLive)
            {
                // Confirmed current by the open stream just now: saved with this time, so that the
                // next start does not judge a quiet tailnet's netmap by its last change.
                writer.OnNetmap(last, _tailnet, _time.GetUtcNow());
            }
            await Step("netmap cache", () => writer.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
        foreach (var listener in _listeners.Keys)
        {
            await Step("listener", () => listener.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
        if (_dataPlane is { } dataPlane)
        {
            await Step("data plane", () => dataPlane.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
        await Step("control channel", () =>
        {
            _control?.Dispose();
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        _signer?.Dispose();
        lock (_retiredSigners)
        {
            foreach (var signer in _retiredSigners)
            {
                signer.Dispose();
            }
        }
        _identity?.Dispose();
        _ownedStore?.Dispose();
        _stopping.Dispose();
        _rotation.Dispose();
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
        _registeredSelf is null ? "MeshNode(not started)" : $"MeshNode({Fqdn}, {string.Join(", ", _addresses)})";
}
