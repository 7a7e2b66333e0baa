using Grpc.Core;
using MeshNet.Control.V1;
using AdminApi = MeshNet.Control.V1.Admin;
using MeshNet.Coordination.Registry;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The operator API (<c>meshnet.control.v1.Admin</c>); calls arrive authenticated by
/// <see cref="Auth.AdminTokenInterceptor"/>.
/// </summary>
internal sealed class AdminService : AdminApi.AdminBase
{
    private readonly AdminOperations _operations;

    public AdminService(AdminOperations operations) => _operations = operations;

    public override Task<Tailnet> CreateTailnet(CreateTailnetRequest request, ServerCallContext context) =>
        _operations.CreateTailnetAsync(request, context.CancellationToken);

    public override Task<ListTailnetsResponse> ListTailnets(ListTailnetsRequest request, ServerCallContext context) =>
        _operations.ListTailnetsAsync(context.CancellationToken);

    public override async Task<DeleteTailnetResponse> DeleteTailnet(DeleteTailnetRequest request, ServerCallContext context)
    {
        await _operations.DeleteTailnetAsync(request.Name, context.CancellationToken).ConfigureAwait(false);
        return new DeleteTailnetResponse();
    }

    public override Task<CreateAuthKeyResponse> CreateAuthKey(CreateAuthKeyRequest request, ServerCallContext context) =>
        _operations.CreateAuthKeyAsync(request, context.CancellationToken);

    public override Task<ListAuthKeysResponse> ListAuthKeys(ListAuthKeysRequest request, ServerCallContext context) =>
        _operations.ListAuthKeysAsync(request.Tailnet, context.CancellationToken);

    public override async Task<RevokeAuthKeyResponse> RevokeAuthKey(RevokeAuthKeyRequest request, ServerCallContext context)
    {
        await _operations.RevokeAuthKeyAsync(request.Id, context.CancellationToken).ConfigureAwait(false);
        return new RevokeAuthKeyResponse();
    }

    public override Task<ListNodesResponse> ListNodes(ListNodesRequest request, ServerCallContext context) =>
        _operations.ListNodesAsync(request.Tailnet, context.CancellationToken);

    public override async Task<DeleteNodeResponse> DeleteNode(DeleteNodeRequest request, ServerCallContext context)
    {
        await _operations.DeleteNodeAsync(request.Tailnet, request.Id, context.CancellationToken).ConfigureAwait(false);
        return new DeleteNodeResponse();
    }

    public override Task<SetPolicyResponse> SetPolicy(SetPolicyRequest request, ServerCallContext context) =>
        _operations.SetPolicyAsync(request, context.CancellationToken);

    public override Task<GetPolicyResponse> GetPolicy(GetPolicyRequest request, ServerCallContext context) =>
        _operations.GetPolicyAsync(request.Tailnet, context.CancellationToken);

    public override async Task<ExpireNodeKeyResponse> ExpireNodeKey(ExpireNodeKeyRequest request, ServerCallContext context)
    {
        await _operations.ExpireNodeKeyAsync(request.Tailnet, request.Id, context.CancellationToken).ConfigureAwait(false);
        return new ExpireNodeKeyResponse();
    }
}
