using System.Net;
using MeshNet.Coordination;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// A tailnet whose coordination service can be stopped and started again as the same service
/// (same URL, same database directory), with nodes that keep their identity and netmap in
/// in-memory stores that outlive them, so that a test can dispose a node and start it again as
/// the same node. Disposing stops the nodes, then the service, and removes the directory.
/// </summary>
internal sealed class OutageTailnet : IAsyncDisposable
{
    private readonly string _data;
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<IDisposable> _stores = [];
    private EmbeddedCoordinationServer? _server;

    private OutageTailnet(string directory, EmbeddedCoordinationServer server, string url)
    {
        Directory = directory;
        _data = Path.Combine(directory, "control");
        _server = server;
        Url = url;
    }

    /// <summary>The test's temporary directory.</summary>
    public string Directory { get; }

    /// <summary>The service's URL (it comes back at the same one).</summary>
    public string Url { get; }

    /// <summary>The running service (throws while it is stopped).</summary>
    public EmbeddedCoordinationServer Server => _server ?? throw new InvalidOperationException("The coordination service is stopped.");

    public static async Task<OutageTailnet> StartAsync()
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("meshnet-outage-").FullName;
        var data = Path.Combine(directory, "control");
        System.IO.Directory.CreateDirectory(data);
        var server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = data });
        await server.CreateTailnetAsync("acme");
        return new OutageTailnet(directory, server, server.Url);
    }

    /// <summary>Stops the service (the nodes lose their control connection).</summary>
    public async Task StopControlAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync();
        }
    }

    /// <summary>Starts the service again, at the same URL with the same database.</summary>
    public async Task RestartControlAsync() =>
        _server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = _data, Url = Url });

    /// <summary>The stores of one node, kept across its restarts.</summary>
    public (InMemoryStateStore State, InMemoryNetmapStore Netmap) NewStores()
    {
        var state = new InMemoryStateStore();
        _stores.Add(state);
        return (state, new InMemoryNetmapStore());
    }

    /// <summary>Options for a node with a netmap cache written every 50 ms; loopback only, fast reconnects.</summary>
    public MeshNodeOptions Options(string hostname, string? authKey, IMeshStateStore state, IMeshNetmapStore netmap)
    {
        var options = TestTailnet.LoopbackOptions(new Uri(Url), hostname, authKey, state);
        options.NetmapStore = netmap;
        options.NetmapCacheWriteInterval = TimeSpan.FromMilliseconds(50);
        return options;
    }

    /// <summary>Starts a node that is disposed with the tailnet (disposing it earlier is fine).</summary>
    public async Task<MeshNode> StartNodeAsync(MeshNodeOptions options)
    {
        var node = await MeshNode.StartAsync(options);
        _owned.Add(node);
        return node;
    }

    /// <summary>Something else to dispose with the tailnet, before the service.</summary>
    public T Own<T>(T disposable) where T : IAsyncDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    /// <summary>Waits until <paramref name="store"/> holds a netmap in which <paramref name="node"/> knows every one of <paramref name="peers"/>.</summary>
    public static Task WaitForCachedPeersAsync(MeshNode node, InMemoryNetmapStore store, IMeshStateStore state, params string[] peers) =>
        TestTailnet.WaitUntilAsync(() =>
        {
            using var identity = state.LoadAsync().AsTask().GetAwaiter().GetResult();
            var cached = store.LoadAsync(identity!).AsTask().GetAwaiter().GetResult();
            if (cached is null)
            {
                return false;
            }
            var names = cached.ToSnapshot().Peers.Values.Select(peer => peer.Name).ToHashSet();
            return peers.All(names.Contains);
        }, $"{node.Name}'s netmap cache to hold {string.Join(", ", peers)}");

    public async ValueTask DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }
        foreach (var store in _stores)
        {
            store.Dispose();
        }
        await StopControlAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
