using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Sharding;
using ClusterApi = MeshNet.Control.V1.Cluster;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The server-to-server API (<c>meshnet.control.v1.Cluster</c>), authenticated with the admin
/// token like the Admin API: the target's half of a planned move.
/// </summary>
internal sealed class ClusterService : ClusterApi.ClusterBase
{
    private readonly TailnetHub _hub;
    private readonly TailnetMover _mover;
    private readonly LeaseKeeper _keeper;

    public ClusterService(TailnetHub hub, TailnetMover mover, LeaseKeeper keeper)
    {
        _hub = hub;
        _mover = mover;
        _keeper = keeper;
    }

    public override async Task<PrepareTailnetResponse> PrepareTailnet(PrepareTailnetRequest request, ServerCallContext context)
    {
        Validation.RequestValidator.TailnetName(request.Tailnet, "tailnet");
        return new PrepareTailnetResponse { Revision = await _hub.PrepareAsync(request.Tailnet, context.CancellationToken).ConfigureAwait(false) };
    }

    public override async Task<AcceptTailnetResponse> AcceptTailnet(AcceptTailnetRequest request, ServerCallContext context)
    {
        Validation.RequestValidator.TailnetName(request.Tailnet, "tailnet");
        var epoch = await _mover.AcceptAsync(new HandoverRequest(request.Tailnet, request.FromServer, request.Epoch, request.Revision,
            request.Cause.Length == 0 ? Incidents.IncidentCauses.PlannedMove : request.Cause, request.Incident,
            request.FrozenFor?.ToTimeSpan() ?? TimeSpan.Zero), context.CancellationToken).ConfigureAwait(false);
        return new AcceptTailnetResponse { Epoch = epoch };
    }

    public override Task<GetLoadResponse> GetLoad(GetLoadRequest request, ServerCallContext context)
    {
        var held = _keeper.HeldLeases().Select(lease => lease.Tailnet).ToHashSet(StringComparer.Ordinal);
        var response = new GetLoadResponse { Server = _keeper.Server.Id, Cpu = _hub.Load.Cpu, Cores = (uint)Environment.ProcessorCount };
        foreach (var load in _hub.Load.Tailnets(_hub.Loaded()).Where(load => held.Contains(load.Tailnet)))
        {
            response.Tailnets.Add(new TailnetLoadReport
            {
                Tailnet = load.Tailnet,
                Streams = (uint)load.Streams,
                Nodes = (uint)load.Nodes,
                WeightedChangeRate = load.WeightedChangeRate,
            });
        }
        return Task.FromResult(response);
    }
}
