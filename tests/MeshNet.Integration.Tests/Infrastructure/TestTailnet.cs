using System.Net;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Coordination;
using AdminApi = MeshNet.Control.V1.Admin;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A coordination service in this process (<see cref="EmbeddedCoordinationServer"/>, SQLite in a
/// temporary directory, plain HTTP/2 on loopback) with one tailnet, "acme", and the nodes a test
/// starts against it (real WireGuard over UDP on 127.0.0.1). The service can be stopped and
/// started again as the same service (same URL, database and admin token). Disposing stops the
/// nodes, then the service, and removes the directory; a failed start removes what it created.
/// </summary>
internal sealed class TestTailnet : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly List<IAsyncDisposable> _owned = [];
    private readonly EmbeddedCoordinationOptions _serverOptions;
    private EmbeddedCoordinationServer? _server;
    private GrpcChannel? _adminChannel;

    private TestTailnet(EmbeddedCoordinationServer server, EmbeddedCoordinationOptions serverOptions, string domain, string directory)
    {
        _server = server;
        _serverOptions = serverOptions;
        Domain = domain;
        Directory = directory;
        Url = server.Url;
    }

    /// <summary>The running service (throws while it is stopped: <see cref="StopControlAsync"/>).</summary>
    public EmbeddedCoordinationServer Server => _server ?? throw new InvalidOperationException("The coordination service is stopped.");

    /// <summary>The service's URL (it comes back at the same one after <see cref="RestartControlAsync"/>).</summary>
    public string Url { get; }

    public string Domain { get; }

    /// <summary>A temporary directory of the test's own (state files and the like); the service's database is in its <c>control</c> subdirectory.</summary>
    public string Directory { get; }

    /// <summary>A client of the service's Admin gRPC API (send <see cref="AdminHeaders"/> with each call).</summary>
    public AdminApi.AdminClient Admin => new(_adminChannel ??= GrpcChannel.ForAddress(Url));

    /// <summary>The admin token's bearer header.</summary>
    public Metadata AdminHeaders => new() { { "authorization", $"Bearer {Server.AdminToken}" } };

    public static async Task<TestTailnet> StartAsync(Action<EmbeddedCoordinationOptions>? configure = null)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("meshnet-integration-").FullName;
        EmbeddedCoordinationServer? server = null;
        try
        {
            // The database lives in the test's directory, so that the service can be restarted with it.
            var options = new EmbeddedCoordinationOptions { DataDirectory = Path.Combine(directory, "control") };
            configure?.Invoke(options);
            server = await EmbeddedCoordinationServer.StartAsync(options);
            // A restart comes back as the same service: same URL, same admin token.
            options.Url = server.Url;
            options.AdminToken = server.AdminToken;
            return new TestTailnet(server, options, await server.CreateTailnetAsync("acme"), directory);
        }
        catch
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
            DeleteDirectory(directory);
            throw;
        }
    }

    /// <summary>Stops the service (the nodes lose their control connection); idempotent.</summary>
    public async Task StopControlAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync();
        }
    }

    /// <summary>Starts the service again after <see cref="StopControlAsync"/>: same URL, same database, same admin token.</summary>
    public async Task RestartControlAsync()
    {
        if (_server is not null)
        {
            throw new InvalidOperationException("The coordination service is running.");
        }
        _server = await EmbeddedCoordinationServer.StartAsync(_serverOptions);
    }

    /// <summary>Node options for this service: loopback only, fast reconnects, the test timeout to start.</summary>
    public MeshNodeOptions Options(string hostname, string? authKey, IMeshStateStore? store = null, Uri? controlUrl = null) =>
        LoopbackOptions(controlUrl ?? new Uri(Url), hostname, authKey, store);

    /// <summary>Node options for the service at <paramref name="controlUrl"/>: loopback only, fast reconnects, the test timeout to start.</summary>
    public static MeshNodeOptions LoopbackOptions(Uri controlUrl, string hostname, string? authKey, IMeshStateStore? store) => new()
    {
        ControlUrl = controlUrl,
        AuthKey = authKey,
        Hostname = hostname,
        BindAddress = IPAddress.Loopback,
        StateStore = store,
        StartTimeout = Timeout,
        ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50),
        ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(500),
        LoggerFactory = TestLogFile.ForNode(hostname),
    };

    /// <summary>Starts a node that is disposed with the tailnet (disposing it earlier is fine: disposal is idempotent).</summary>
    public async Task<MeshNode> StartNodeAsync(MeshNodeOptions options)
    {
        var node = await MeshNode.StartAsync(options);
        _owned.Add(node);
        return node;
    }

    public Task<MeshNode> StartNodeAsync(string hostname, string authKey) => StartNodeAsync(Options(hostname, authKey));

    /// <summary>Something else to dispose with the tailnet, before the service (listeners, proxies).</summary>
    public T Own<T>(T disposable) where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out after {Timeout.TotalSeconds} s waiting for {what}.");
            }
            await Task.Delay(20);
        }
    }

    public static Task WaitForPeerAsync(MeshNode node, string name) =>
        WaitUntilAsync(() => node.GetStatus().Peers.Any(peer => peer.Name == name), $"{node.Name} to see {name}");

    /// <summary>Writes <paramref name="text"/> on one side and reads it back on the other.</summary>
    public static async Task<string> ExchangeAsync(Stream from, Stream to, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        await from.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
        var buffer = new byte[bytes.Length];
        await to.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
        return Encoding.UTF8.GetString(buffer);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            for (int i = _owned.Count - 1; i >= 0; i--)
            {
                await _owned[i].DisposeAsync();
            }
        }
        finally
        {
            try
            {
                _adminChannel?.Dispose();
                await StopControlAsync();
            }
            finally
            {
                DeleteDirectory(Directory);
            }
        }
    }

    private static void DeleteDirectory(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
