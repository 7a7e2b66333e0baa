using System.Diagnostics;
using System.Net;
using MeshNet.Coordination;

namespace MeshNet.Bench.Startup;

/// <summary>
/// One coordination service (restartable at the same URL with the same database) and one peer
/// node that listens and reports each first byte it reads; measures a starting node's time from
/// <see cref="MeshNode.StartAsync"/> to that byte.
/// </summary>
internal sealed class StartupScenario : IAsyncDisposable
{
    public const int PeerPort = 7000;

    private readonly string _directory;
    private readonly string _data;
    private EmbeddedCoordinationServer? _server;
    private MeshNode? _peer;
    private MeshListener? _listener;
    private Task _accepting = Task.CompletedTask;
    private TaskCompletionSource _received = NewSignal();

    private readonly LatencyProxy? _proxy;

    private StartupScenario(string directory, EmbeddedCoordinationServer server, string authKey, LatencyProxy? proxy)
    {
        _directory = directory;
        _data = Path.Combine(directory, "control");
        _server = server;
        ServerUrl = server.Url;
        _proxy = proxy;
        Url = proxy?.Url.ToString().TrimEnd('/') ?? server.Url;
        AuthKey = authKey;
    }

    /// <summary>The URL the nodes use: the service itself, or the latency proxy in front of it.</summary>
    public string Url { get; }

    /// <summary>The service's own URL (it restarts there).</summary>
    public string ServerUrl { get; }

    /// <summary>Where the nodes log (null: nowhere; <c>--verbose</c> logs to the console).</summary>
    public static Microsoft.Extensions.Logging.ILoggerFactory? Logging { get; set; }

    public string AuthKey { get; }

    /// <param name="controlRoundTrip">Latency added between the nodes and the service (zero: none, the service is on loopback in this process).</param>
    public static async Task<StartupScenario> StartAsync(TimeSpan controlRoundTrip)
    {
        var directory = Directory.CreateTempSubdirectory("meshnet-bench-startup-").FullName;
        var data = Path.Combine(directory, "control");
        Directory.CreateDirectory(data);
        var server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = data });
        await server.CreateTailnetAsync("bench");
        var key = await server.CreateAuthKeyAsync("bench", reusable: true);
        var proxy = controlRoundTrip > TimeSpan.Zero ? new LatencyProxy(IPEndPoint.Parse(new Uri(server.Url).Authority), controlRoundTrip) : null;
        var scenario = new StartupScenario(directory, server, key, proxy);
        scenario._peer = await MeshNode.StartAsync(scenario.Options("peer", new InMemoryStateStore(), null));
        scenario._listener = await scenario._peer.ListenAsync(PeerPort);
        scenario._accepting = scenario.AcceptAsync();
        return scenario;
    }

    /// <summary>Options for a node of this benchmark: loopback, fast reconnects, the cache written every 50 ms.</summary>
    public MeshNodeOptions Options(string hostname, IMeshStateStore state, IMeshNetmapStore? netmap) => new()
    {
        LoggerFactory = Logging,
        ControlUrl = new Uri(Url),
        AuthKey = AuthKey,
        Hostname = hostname,
        BindAddress = IPAddress.Loopback,
        StateStore = state,
        NetmapStore = netmap,
        NetmapCacheWriteInterval = TimeSpan.FromMilliseconds(50),
        StartTimeout = TimeSpan.FromSeconds(30),
        ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50),
        ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(500),
    };

    /// <summary>Starts a node with <paramref name="options"/>, dials the peer, writes one byte; returns the time until the peer read it, and the node.</summary>
    public async Task<(StartupTiming Timing, MeshNode Node)> MeasureAsync(MeshNodeOptions options, CancellationToken cancellationToken)
    {
        _received = NewSignal();
        var clock = Stopwatch.StartNew();
        var node = await MeshNode.StartAsync(options, cancellationToken);
        var started = clock.Elapsed;
        try
        {
            await using var connection = await node.DialAsync("peer", PeerPort, cancellationToken);
            var connected = clock.Elapsed;
            await connection.WriteAsync(new byte[] { 42 }, cancellationToken);
            await connection.FlushAsync(cancellationToken);
            await _received.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            return (new StartupTiming(started.TotalMilliseconds, connected.TotalMilliseconds, clock.Elapsed.TotalMilliseconds), node);
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    public async Task StopControlAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync();
        }
    }

    public async Task RestartControlAsync() =>
        _server ??= await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = _data, Url = ServerUrl });

    private async Task AcceptAsync()
    {
        var buffer = new byte[1];
        while (true)
        {
            MeshConnection connection;
            try
            {
                connection = await _listener!.AcceptAsync();
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException or MeshException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                await using (connection)
                {
                    if (await connection.ReadAsync(buffer) == 1)
                    {
                        _received.TrySetResult();
                    }
                }
            });
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask DisposeAsync()
    {
        if (_listener is not null)
        {
            await _listener.DisposeAsync();
        }
        await _accepting;
        if (_peer is not null)
        {
            await _peer.DisposeAsync();
        }
        await StopControlAsync();
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Milliseconds from StartAsync to its return, to the connection being open, and to the peer reading the first byte.</summary>
internal readonly record struct StartupTiming(double Started, double Connected, double FirstByte);
