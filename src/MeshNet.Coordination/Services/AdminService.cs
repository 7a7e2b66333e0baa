using Grpc.Core;
using MeshNet.Control.V1;
using AdminApi = MeshNet.Control.V1.Admin;
using MeshNet.Coordination.Registry;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The operator API (<c>meshnet.control.v1.Admin</c>); calls arrive authenticated by
/// <see cref="Auth.AdminTokenInterceptor"/>. Any server answers any call: reads come from the
/// shared store, and a write of a tailnet another server serves is forwarded there
/// (<see cref="AdminForwarder"/>) with its idempotency key (<c>meshnet-idempotency-key</c>).
/// </summary>
internal sealed class AdminService : AdminApi.AdminBase
{
    private readonly AdminOperations _operations;
    private readonly ClusterOperations _cluster;
    private readonly AdminForwarder _forwarder;

    public AdminService(AdminOperations operations, ClusterOperations cluster, AdminForwarder forwarder)
    {
        _operations = operations;
        _cluster = cluster;
        _forwarder = forwarder;
    }

    public override Task<Tailnet> CreateTailnet(CreateTailnetRequest request, ServerCallContext context) =>
        _operations.CreateTailnetAsync(request, context.CancellationToken);

    public override Task<ListTailnetsResponse> ListTailnets(ListTailnetsRequest request, ServerCallContext context) =>
        _operations.ListTailnetsAsync(context.CancellationToken);

    public override Task<DeleteTailnetResponse> DeleteTailnet(DeleteTailnetRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, async _ =>
        {
            await _operations.DeleteTailnetAsync(request.Name, context.CancellationToken).ConfigureAwait(false);
            return new DeleteTailnetResponse();
        }, (client, options) => client.DeleteTailnetAsync(request, options).ResponseAsync);

    public override Task<CreateAuthKeyResponse> CreateAuthKey(CreateAuthKeyRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, key => _operations.CreateAuthKeyAsync(request, context.CancellationToken, key),
            (client, options) => client.CreateAuthKeyAsync(request, options).ResponseAsync);

    public override Task<ListAuthKeysResponse> ListAuthKeys(ListAuthKeysRequest request, ServerCallContext context) =>
        _operations.ListAuthKeysAsync(request.Tailnet, context.CancellationToken);

    public override Task<RevokeAuthKeyResponse> RevokeAuthKey(RevokeAuthKeyRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, async key =>
        {
            await _operations.RevokeAuthKeyAsync(request.Id, context.CancellationToken, key).ConfigureAwait(false);
            return new RevokeAuthKeyResponse();
        }, (client, options) => client.RevokeAuthKeyAsync(request, options).ResponseAsync);

    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context) =>
        _operations.ListNodesAsync(request.Tailnet, context.CancellationToken);

    public override Task<DeleteNodeResponse> DeleteNode(DeleteNodeRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, async key =>
        {
            await _operations.DeleteNodeAsync(request.Tailnet, request.Id, context.CancellationToken, key).ConfigureAwait(false);
            return new DeleteNodeResponse();
        }, (client, options) => client.DeleteNodeAsync(request, options).ResponseAsync);

    public override Task<SetPolicyResponse> SetPolicy(SetPolicyRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, key => _operations.SetPolicyAsync(request, context.CancellationToken, key),
            (client, options) => client.SetPolicyAsync(request, options).ResponseAsync);

    public override Task<GetPolicyResponse> GetPolicy(GetPolicyRequest request, ServerCallContext context) =>
        _operations.GetPolicyAsync(request.Tailnet, context.CancellationToken);

    public override Task<ExpireNodeKeyResponse> ExpireNodeKey(ExpireNodeKeyRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, async key =>
        {
            await _operations.ExpireNodeKeyAsync(request.Tailnet, request.Id, context.CancellationToken, key).ConfigureAwait(false);
            return new ExpireNodeKeyResponse();
        }, (client, options) => client.ExpireNodeKeyAsync(request, options).ResponseAsync);

    public override Task<MoveTailnetResponse> MoveTailnet(MoveTailnetRequest request, ServerCallContext context) =>
        _forwarder.RunAsync(context, _ => _cluster.MoveTailnetAsync(request, context.CancellationToken),
            (client, options) => client.MoveTailnetAsync(request, options).ResponseAsync);

    public override Task<DrainServerResponse> DrainServer(DrainServerRequest request, ServerCallContext context) =>
        _cluster.DrainServerAsync(request, context.CancellationToken);

    public override Task<ListServersResponse> ListServers(ListServersRequest request, ServerCallContext context) =>
        _cluster.ListServersAsync(context.CancellationToken);

    public override Task<ListLeasesResponse> ListLeases(ListLeasesRequest request, ServerCallContext context) =>
        _cluster.ListLeasesAsync(context.CancellationToken);

    public override Task<ListIncidentsResponse> ListIncidents(ListIncidentsRequest request, ServerCallContext context) =>
        _cluster.ListIncidentsAsync(request, context.CancellationToken);

    public override async Task<ReleaseQuarantineResponse> ReleaseQuarantine(ReleaseQuarantineRequest request, ServerCallContext context)
    {
        await _cluster.ReleaseQuarantineAsync(request.Tailnet, context.CancellationToken).ConfigureAwait(false);
        return new ReleaseQuarantineResponse();
    }

    public override async Task<SetRebalancerResponse> SetRebalancer(SetRebalancerRequest request, ServerCallContext context)
    {
        await _cluster.SetRebalancerAsync(request.Paused, context.CancellationToken).ConfigureAwait(false);
        return new SetRebalancerResponse();
    }
}
