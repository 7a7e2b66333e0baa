using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Sharding;

/// <summary>
/// The live coordination servers as the store knows them (registered, not stopped, heartbeat
/// within two lease TTLs), and the URLs nodes are told to use: refreshed by the maintenance pass
/// and passed to every bus, which tells its nodes when the set changes. A server alone tells its
/// nodes nothing (there is no other server to fall back to, and the URL it listens on may not be
/// the one nodes reach it at, behind a proxy). Thread-safe.
/// </summary>
internal sealed class ServerDirectory
{
    private readonly ICoordinationLeaseStore _store;
    private readonly TailnetHub _hub;
    private readonly LeaseKeeper _keeper;
    private volatile IReadOnlyList<StoredServer> _servers = [];

    public ServerDirectory(ICoordinationLeaseStore store, TailnetHub hub, LeaseKeeper keeper)
    {
        _store = store;
        _hub = hub;
        _keeper = keeper;
    }

    /// <summary>The live servers at the last refresh.</summary>
    public IReadOnlyList<StoredServer> Live => _servers;

    /// <summary>Reads the server set and hands the URLs to the buses.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var all = await _store.ListServersAsync(cancellationToken).ConfigureAwait(false);
        var liveLimit = _keeper.Settings.Ttl * 2;
        var live = all.Where(server => !server.Stopped && server.HeartbeatAge < liveLimit && server.Url.Length > 0).ToList();
        _servers = live;
        _hub.SetControlUrls(live.Count < 2 ? [] : [.. live.Select(server => server.Url).Order(StringComparer.Ordinal)]);
    }
}
