using MeshNet.Coordination.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace MeshNet.Coordination;

/// <summary>Maps the MeshNet coordination service's endpoints.</summary>
public static class CoordinationEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the gRPC services <c>meshnet.control.v1.Control</c> (nodes),
    /// <c>meshnet.control.v1.Admin</c> (operators) and <c>meshnet.control.v1.Cluster</c> (the other
    /// servers of the deployment, with the admin token). Requires
    /// <see cref="CoordinationServiceCollectionExtensions.AddMeshNetCoordination"/>. Serve them over
    /// HTTP/2 with TLS; plain HTTP/2 is accepted from loopback only.
    /// </summary>
    /// <param name="endpoints">The application's endpoint builder.</param>
    /// <returns><paramref name="endpoints"/>.</returns>
    public static IEndpointRouteBuilder MapMeshNetCoordination(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGrpcService<ControlService>();
        endpoints.MapGrpcService<AdminService>();
        endpoints.MapGrpcService<ClusterService>();
        return endpoints;
    }
}
