using Google.Protobuf;
using Grpc.Core;
using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Protocol;
using MeshNet.Userspace.Crypto;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet.TestSupport;

/// <summary>
/// A node without a data plane: its own key, and the node's real control client
/// (<see cref="ControlClient"/> over several servers, <see cref="MapStreamLoop"/> with resume,
/// redirects, retry times and the epoch rule), observing every message and every stream end. Many
/// of them stand in for a tailnet's nodes in tests of the coordination service and in the
/// failover benchmark: what they record shows sequence continuity, full netmaps, epochs, and each
/// control gap (a stream's end to the first message of the next).
/// </summary>
/// <remarks>Thread-safe. Disposing stops its stream and closes its connections.</remarks>
public sealed class ControlOnlyNode : IAsyncDisposable
{
    private readonly WireGuardPrivateKey _key = WireGuardPrivateKey.Generate();
    private readonly ControlClient _client;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<MapEvent> _events = [];
    private readonly List<TimeSpan> _gaps = [];
    private readonly List<(DateTimeOffset At, string What)> _failures = [];
    private readonly string _instance = Guid.NewGuid().ToString("N")[..16];
    private readonly Recorder _recorder;
    private ControlSigner? _signer;
    private MapStreamLoop? _loop;
    private Task _run = Task.CompletedTask;
    private long _endedAt;
    private string _endpoint;

    private ControlOnlyNode(IReadOnlyList<Uri> servers, string endpoint)
    {
        _client = new ControlClient(servers, null, null);
        _endpoint = endpoint;
        _recorder = new Recorder(Applied, Ended);
    }

    /// <summary>The node's id once registered.</summary>
    public ulong NodeId { get; private set; }

    /// <summary>The node's name.</summary>
    public string Name { get; private set; } = "";

    /// <summary>The server its calls go to now.</summary>
    public Uri Server => _client.Url;

    /// <summary>Completes when the first full netmap was applied.</summary>
    public Task FirstNetmap => _loop?.FirstNetmap ?? Task.CompletedTask;

    /// <summary>The current netmap's peers.</summary>
    public int PeerCount => _loop?.Current?.Peers.Count ?? 0;

    /// <summary>The policy version the current netmap reflects.</summary>
    public ulong PolicyVersion => _loop?.Current?.PolicyVersion ?? 0;

    /// <summary>The highest epoch seen.</summary>
    public ulong Epoch => _loop?.Epoch ?? 0;

    /// <summary>Messages refused because their epoch was lower than one seen.</summary>
    public long StaleEpochRefused => _loop?.StaleEpochMessages ?? 0;

    /// <summary>True while its stream is open and delivering.</summary>
    public bool Connected => _loop?.Connected ?? false;

    /// <summary>Every message applied, in order.</summary>
    public IReadOnlyList<MapEvent> Events
    {
        get
        {
            lock (_gate)
            {
                return [.. _events];
            }
        }
    }

    /// <summary>Each control gap so far: from a stream's end to the first message of the next.</summary>
    public IReadOnlyList<TimeSpan> Gaps
    {
        get
        {
            lock (_gate)
            {
                return [.. _gaps];
            }
        }
    }

    /// <summary>Every stream end: when, where and why (for diagnosing a slow resume).</summary>
    public IReadOnlyList<(DateTimeOffset At, string What)> Failures
    {
        get
        {
            lock (_gate)
            {
                return [.. _failures];
            }
        }
    }

    /// <summary>True when a stream has ended and no message of a new one has arrived yet.</summary>
    public bool InGap
    {
        get
        {
            lock (_gate)
            {
                return _endedAt != 0;
            }
        }
    }

    /// <summary>Raised (on the stream's thread) after every netmap the node applies.</summary>
    public event Action<ControlOnlyNode>? NetmapApplied;

    /// <summary>The endpoints the current netmap gives peer <paramref name="nodeId"/> (empty when it is not a peer).</summary>
    public IReadOnlyList<System.Net.IPEndPoint> PeerEndpoints(ulong nodeId) =>
        _loop?.Current is { } netmap && netmap.Peers.TryGetValue(nodeId, out var peer) ? peer.Endpoints : [];

    /// <summary>The node's public key.</summary>
    public byte[] NodeKey => _key.PublicKey.AsSpan().ToArray();

    /// <summary>A node with a new key that has not registered yet (<see cref="RegisterAsync"/>).</summary>
    public static ControlOnlyNode Create(IReadOnlyList<Uri> servers, string? endpoint = null) =>
        new(servers, endpoint ?? $"192.0.2.{Random.Shared.Next(1, 255)}:{Random.Shared.Next(1024, 65535)}");

    /// <summary>Registers a node with <paramref name="authKey"/> through any of <paramref name="servers"/> (redirects and retry times followed).</summary>
    public static async Task<ControlOnlyNode> JoinAsync(IReadOnlyList<Uri> servers, string authKey, string hostname, CancellationToken cancellationToken,
        string? endpoint = null)
    {
        var node = Create(servers, endpoint);
        try
        {
            await node.RegisterAsync(authKey, hostname, cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Opens the map stream (kept open, resumed after every failure, until disposed).</summary>
    public void Start()
    {
        _loop = new MapStreamLoop(_client, () =>
        {
            var request = new MapRequest { NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()), Instance = _instance };
            lock (_gate)
            {
                request.Endpoints.Add(_endpoint);
            }
            return request;
        }, _ => NetmapApplied?.Invoke(this), (_, _) => Task.FromResult(false), new ReconnectBackoff(TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2)),
            TimeSpan.FromMinutes(2), TimeProvider.System, NullLogger.Instance)
        {
            Observer = _recorder,
        };
        _run = _loop.RunAsync(_stop.Token);
    }

    /// <summary>Reports new endpoints (a change every peer hears about).</summary>
    public async Task UpdateEndpointsAsync(string endpoint, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _endpoint = endpoint;
        }
        var request = new UpdateEndpointsRequest { NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()) };
        request.Endpoints.Add(endpoint);
        await RetryAsync(() => _client.UpdateEndpointsAsync(request, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The problems in what this node received, empty when none: every message after the first
    /// full netmap continues the sequence by one (across streams and servers), no later message is
    /// a full netmap, and epochs never go back.
    /// </summary>
    public IReadOnlyList<string> Problems(bool allowFullMaps = false)
    {
        var events = Events;
        var problems = new List<string>();
        for (int i = 1; i < events.Count; i++)
        {
            var (previous, current) = (events[i - 1], events[i]);
            if (current.Sequence != previous.Sequence + 1)
            {
                problems.Add($"{Name}: sequence {current.Sequence} after {previous.Sequence} (from {current.Server})");
            }
            if (!allowFullMaps && current.Body == MapResponse.BodyOneofCase.Full)
            {
                problems.Add($"{Name}: a full netmap at sequence {current.Sequence} (from {current.Server})");
            }
            if (current.Epoch < previous.Epoch)
            {
                problems.Add($"{Name}: epoch {current.Epoch} after {previous.Epoch}");
            }
        }
        return problems;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _run.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _client.Dispose();
        _signer?.Dispose();
        _key.Dispose();
        _stop.Dispose();
    }

    private void Applied(MapResponse message, bool first, Uri server)
    {
        long now = TimeProvider.System.GetTimestamp();
        lock (_gate)
        {
            _events.Add(new MapEvent(DateTimeOffset.UtcNow, message.Sequence, message.Epoch, message.Revision, message.BodyCase, first, server.ToString(),
                _loop?.Current?.PolicyVersion ?? 0));
            if (_endedAt != 0)
            {
                _gaps.Add(TimeProvider.System.GetElapsedTime(_endedAt, now));
                _endedAt = 0;
            }
        }
    }

    private void Ended(Exception? failure, Uri server)
    {
        long now = TimeProvider.System.GetTimestamp();
        lock (_gate)
        {
            string what = failure switch
            {
                null => "ended",
                RpcException rpc => $"{rpc.StatusCode} {rpc.Trailers.GetValue(ControlErrors.TrailerKey)} retry {rpc.Trailers.GetValue(ControlErrors.RetryAfterTrailer)} {rpc.Status.Detail}",
                _ => $"{failure.GetType().Name}: {failure.Message}",
            };
            if (_failures.Count < 200)
            {
                _failures.Add((DateTimeOffset.UtcNow, $"{server} {what}"));
            }
            if (_endedAt == 0)
            {
                _endedAt = now;
            }
        }
    }

    /// <summary>
    /// Registers this node's key with <paramref name="authKey"/>, retrying (with the same key) while
    /// servers are down, redirect or nobody serves the tailnet, for up to a minute or until canceled.
    /// </summary>
    public async Task RegisterAsync(string authKey, string hostname, CancellationToken cancellationToken)
    {
        var info = await RetryAsync(() => _client.GetServerInfoAsync(cancellationToken), cancellationToken).ConfigureAwait(false);
        _signer = ControlSigner.Create(_key, info.ServerKey.Span, TimeProvider.System) ?? throw new InvalidOperationException("unusable server key");
        _client.Signer = _signer;
        var request = new RegisterRequest { NodeKey = ByteString.CopyFrom(_key.PublicKey.AsSpan()), AuthKey = authKey, Hostname = hostname };
        var response = await RetryAsync(() => _client.RegisterAsync(request, cancellationToken), cancellationToken).ConfigureAwait(false);
        NodeId = response.Self.Id;
        Name = response.Self.Name;
        _client.Tailnet = response.Tailnet;
    }

    /// <summary>Runs a call, retrying while nobody serves the tailnet or a server is down (as the node does), for up to a minute.</summary>
    private async Task<T> RetryAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            try
            {
                return await call().ConfigureAwait(false);
            }
            catch (Exception exception) when (DateTime.UtcNow < deadline && IsTransient(exception))
            {
                var route = _client.Route(exception);
                await Task.Delay(route.RetryAfter > TimeSpan.Zero ? route.RetryAfter : TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private Task RetryAsync(Func<Task> call, CancellationToken cancellationToken) => RetryAsync(async () =>
    {
        await call().ConfigureAwait(false);
        return true;
    }, cancellationToken);

    private static bool IsTransient(Exception exception) => exception switch
    {
        RpcException rpc => rpc.StatusCode is StatusCode.Unavailable or StatusCode.ResourceExhausted or StatusCode.DeadlineExceeded
            || rpc.Trailers.GetValue(ControlErrors.TrailerKey) is ControlErrors.NoOwner or ControlErrors.NotOwner,
        HttpRequestException or IOException => true,
        _ => false,
    };

    /// <summary>The loop's observer, forwarding to this node.</summary>
    private sealed class Recorder(Action<MapResponse, bool, Uri> applied, Action<Exception?, Uri> ended) : IMapStreamObserver
    {
        public void MessageApplied(MapResponse message, bool firstOfStream, Uri server) => applied(message, firstOfStream, server);

        public void StreamEnded(Exception? failure, Uri server) => ended(failure, server);
    }
}

/// <summary>What a <see cref="ControlOnlyNode"/> records of each message.</summary>
/// <param name="At">When it arrived.</param>
/// <param name="Sequence">Its sequence.</param>
/// <param name="Epoch">Its epoch.</param>
/// <param name="Revision">Its tailnet revision.</param>
/// <param name="Body">Full netmap, delta or keep-alive.</param>
/// <param name="FirstOfStream">The first message of a stream.</param>
/// <param name="Server">The server that sent it.</param>
/// <param name="PolicyVersion">The policy version the netmap reflected after it.</param>
public sealed record MapEvent(DateTimeOffset At, ulong Sequence, ulong Epoch, ulong Revision, MapResponse.BodyOneofCase Body, bool FirstOfStream,
    string Server, ulong PolicyVersion);
