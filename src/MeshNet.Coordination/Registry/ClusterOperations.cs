using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Sharding;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// The Admin API's operations on the deployment (several servers sharing one database): moves,
/// drains, the server and lease lists, incidents, quarantine and the rebalancer switch. Reads
/// come from the shared store, so any server answers; a move runs on the tailnet's owner (NotOwner
/// otherwise: the gRPC service forwards it there) and a drain on the drained server.
/// </summary>
internal sealed class ClusterOperations
{
    /// <summary>The cluster setting that pauses the rebalancer ("true"/"false").</summary>
    public const string RebalancerPausedSetting = "rebalancer.paused";

    private readonly LeaseKeeper _keeper;
    private readonly TailnetMover _mover;
    private readonly ServerDirectory _directory;
    private readonly IClusterPeers _peers;

    public ClusterOperations(LeaseKeeper keeper, TailnetMover mover, ServerDirectory directory, IClusterPeers peers)
    {
        _keeper = keeper;
        _mover = mover;
        _directory = directory;
        _peers = peers;
    }

    public async Task<MoveTailnetResponse> MoveTailnetAsync(MoveTailnetRequest request, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(request.Tailnet, "tailnet");
        var result = await _mover.MoveAsync(request.Tailnet, request.TargetServer.Length == 0 ? null : request.TargetServer,
            Incidents.IncidentCauses.PlannedMove, null, cancellationToken).ConfigureAwait(false);
        return ToProto(result);
    }

    public async Task<DrainServerResponse> DrainServerAsync(DrainServerRequest request, CancellationToken cancellationToken)
    {
        if (request.Server.Length == 0 || request.Server == _keeper.Server.Id)
        {
            if (request.Undrain)
            {
                await _mover.UndrainAsync(cancellationToken).ConfigureAwait(false);
                return new DrainServerResponse();
            }
            var (moved, failed) = await _mover.DrainAsync(cancellationToken).ConfigureAwait(false);
            var response = new DrainServerResponse();
            response.Moved.Add(moved.Select(ToProto));
            response.Failed.Add(failed);
            return response;
        }
        await _directory.RefreshAsync(cancellationToken).ConfigureAwait(false);
        var server = _directory.Live.FirstOrDefault(live => live.Id == request.Server)
            ?? throw Failures.NotFound($"server '{request.Server}' is not live");
        return await _peers.DrainAsync(server.Url, server.Id, request.Undrain, cancellationToken).ConfigureAwait(false);
    }

    public async Task<ListServersResponse> ListServersAsync(CancellationToken cancellationToken)
    {
        var servers = await _keeper.Store.ListServersAsync(cancellationToken).ConfigureAwait(false);
        var leases = await _keeper.Store.ListLeasesAsync(cancellationToken).ConfigureAwait(false);
        var liveLimit = _keeper.Settings.Ttl * 2;
        var response = new ListServersResponse();
        foreach (var server in servers)
        {
            response.Servers.Add(new CoordinationServer
            {
                Id = server.Id,
                Url = server.Url,
                Live = !server.Stopped && server.HeartbeatAge < liveLimit,
                Draining = server.Draining,
                HeartbeatAge = Duration.FromTimeSpan(server.HeartbeatAge),
                Load = server.Load,
                Tailnets = (uint)leases.Count(lease => lease.Owner == server.Id && lease.ExpiresIn > TimeSpan.Zero),
            });
        }
        return response;
    }

    public async Task<ListLeasesResponse> ListLeasesAsync(CancellationToken cancellationToken)
    {
        var response = new ListLeasesResponse();
        foreach (var lease in await _keeper.Store.ListLeasesAsync(cancellationToken).ConfigureAwait(false))
        {
            response.Leases.Add(new TailnetLease
            {
                Tailnet = lease.Tailnet,
                Owner = lease.Owner ?? "",
                OwnerUrl = lease.OwnerUrl ?? "",
                Epoch = lease.Epoch,
                ExpiresIn = Duration.FromTimeSpan(lease.ExpiresIn),
                Revision = lease.Revision,
                Quarantined = lease.Quarantined,
                QuarantineReason = lease.QuarantineReason,
            });
        }
        return response;
    }

    public async Task<ListIncidentsResponse> ListIncidentsAsync(ListIncidentsRequest request, CancellationToken cancellationToken)
    {
        int limit = request.Limit == 0 ? 50 : (int)Math.Min(request.Limit, 1000);
        var response = new ListIncidentsResponse();
        foreach (var incident in await _keeper.Store.ListIncidentsAsync(limit, cancellationToken).ConfigureAwait(false))
        {
            response.Incidents.Add(IncidentReport.ToProto(incident));
        }
        return response;
    }

    public async Task ReleaseQuarantineAsync(string tailnet, CancellationToken cancellationToken)
    {
        RequestValidator.TailnetName(tailnet, "tailnet");
        if (!await _keeper.Store.ReleaseQuarantineAsync(tailnet, cancellationToken).ConfigureAwait(false))
        {
            throw Failures.NotFound($"tailnet '{tailnet}' is not quarantined");
        }
    }

    public Task SetRebalancerAsync(bool paused, CancellationToken cancellationToken) =>
        _keeper.Store.SetSettingAsync(RebalancerPausedSetting, paused ? "true" : "false", cancellationToken);

    private static MoveTailnetResponse ToProto(MoveResult result) => new()
    {
        FromServer = result.FromServer,
        ToServer = result.ToServer,
        Epoch = result.Epoch,
        Frozen = Duration.FromTimeSpan(result.Frozen),
        StreamsRedirected = (uint)result.StreamsRedirected,
        Tailnet = result.Tailnet,
    };
}
