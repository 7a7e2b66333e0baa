using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Sharding;

namespace MeshNet.Coordination.Services;

/// <summary>The <see cref="IClusterPeers"/> calls over gRPC (the Cluster and Admin services of the other servers). Thread-safe.</summary>
internal sealed class ClusterPeers : IClusterPeers
{
    private readonly PeerChannels _channels;

    public ClusterPeers(PeerChannels channels) => _channels = channels;

    public async Task<ulong> PrepareAsync(string url, string tailnet, CancellationToken cancellationToken)
    {
        var client = new Cluster.ClusterClient(_channels.Channel(url));
        var response = await client.PrepareTailnetAsync(new PrepareTailnetRequest { Tailnet = tailnet }, _channels.Options(null, null, cancellationToken))
            .ResponseAsync.ConfigureAwait(false);
        return response.Revision;
    }

    public async Task<ulong> AcceptAsync(string url, HandoverRequest request, CancellationToken cancellationToken)
    {
        var client = new Cluster.ClusterClient(_channels.Channel(url));
        var response = await client.AcceptTailnetAsync(new AcceptTailnetRequest
        {
            Tailnet = request.Tailnet,
            FromServer = request.FromServer,
            Epoch = request.Epoch,
            Revision = request.Revision,
            Cause = request.Cause,
            Incident = request.IncidentId,
            FrozenFor = Duration.FromTimeSpan(request.FrozenFor),
        }, _channels.Options(null, null, cancellationToken)).ResponseAsync.ConfigureAwait(false);
        return response.Epoch;
    }

    public async Task<DrainServerResponse> DrainAsync(string url, string serverId, bool undrain, CancellationToken cancellationToken)
    {
        var client = new Admin.AdminClient(_channels.Channel(url));
        return await client.DrainServerAsync(new DrainServerRequest { Server = serverId, Undrain = undrain }, _channels.Options(null, null, cancellationToken))
            .ResponseAsync.ConfigureAwait(false);
    }

    public async Task<RebalancePlanner.ServerLoads> GetLoadAsync(string url, CancellationToken cancellationToken)
    {
        var client = new Cluster.ClusterClient(_channels.Channel(url));
        var response = await client.GetLoadAsync(new GetLoadRequest(), _channels.Options(null, null, cancellationToken)).ResponseAsync.ConfigureAwait(false);
        return new RebalancePlanner.ServerLoads(response.Server,
            [.. response.Tailnets.Select(load => new TailnetLoad(load.Tailnet, (int)load.Streams, (int)load.Nodes, load.WeightedChangeRate))], response.Cpu,
            Cores: (int)response.Cores);
    }

    public async Task<MoveTailnetResponse> MoveAsync(string url, string tailnet, string targetServer, CancellationToken cancellationToken)
    {
        var client = new Admin.AdminClient(_channels.Channel(url));
        return await client.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = tailnet, TargetServer = targetServer },
            _channels.Options(null, null, cancellationToken)).ResponseAsync.ConfigureAwait(false);
    }
}
