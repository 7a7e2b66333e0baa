using MeshNet.Coordination;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// A <see cref="TestTailnet"/> (whose coordination service can be stopped and started again as
/// the same service) with nodes that keep their identity and netmap in in-memory stores that
/// outlive them, so that a test can dispose a node and start it again as the same node.
/// Disposing disposes the tailnet (nodes, service, directory), then the stores.
/// </summary>
internal sealed class OutageTailnet : IAsyncDisposable
{
    private readonly TestTailnet _tailnet;
    private readonly List<IDisposable> _stores = [];

    private OutageTailnet(TestTailnet tailnet) => _tailnet = tailnet;

    /// <summary>The test's temporary directory.</summary>
    public string Directory => _tailnet.Directory;

    /// <summary>The service's URL (it comes back at the same one).</summary>
    public string Url => _tailnet.Url;

    /// <summary>The running service (throws while it is stopped).</summary>
    public EmbeddedCoordinationServer Server => _tailnet.Server;

    public static async Task<OutageTailnet> StartAsync() => new(await TestTailnet.StartAsync());

    /// <summary>Stops the service (the nodes lose their control connection).</summary>
    public Task StopControlAsync() => _tailnet.StopControlAsync();

    /// <summary>Starts the service again, at the same URL with the same database.</summary>
    public Task RestartControlAsync() => _tailnet.RestartControlAsync();

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
    public Task<MeshNode> StartNodeAsync(MeshNodeOptions options) => _tailnet.StartNodeAsync(options);

    /// <summary>Something else to dispose with the tailnet, before the service.</summary>
    public T Own<T>(T disposable) where T : IAsyncDisposable => _tailnet.Own(disposable);

    /// <summary>The netmap <paramref name="store"/> holds for the node whose identity <paramref name="state"/> holds, or null.</summary>
    public static MeshCachedNetmap? LoadCached(IMeshNetmapStore store, IMeshStateStore state)
    {
        using var identity = state.LoadAsync().AsTask().GetAwaiter().GetResult();
        return identity is null ? null : store.LoadAsync(identity).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Waits until <paramref name="store"/> holds a netmap in which <paramref name="node"/> knows every one of <paramref name="peers"/>.</summary>
    public static Task WaitForCachedPeersAsync(MeshNode node, InMemoryNetmapStore store, IMeshStateStore state, params string[] peers) =>
        TestTailnet.WaitUntilAsync(() =>
        {
            if (LoadCached(store, state) is not { } cached)
            {
                return false;
            }
            var names = cached.ToSnapshot().Peers.Values.Select(peer => peer.Name).ToHashSet();
            return peers.All(names.Contains);
        }, $"{node.Name}'s netmap cache to hold {string.Join(", ", peers)}");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _tailnet.DisposeAsync();
        }
        finally
        {
            foreach (var store in _stores)
            {
                store.Dispose();
            }
        }
    }
}
