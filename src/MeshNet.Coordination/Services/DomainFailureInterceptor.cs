using Grpc.Core;
using Grpc.Core.Interceptors;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The outermost interceptor of the Control and Admin services: a <see cref="CoordinationException"/>
/// thrown by the service's logic leaves as the gRPC status <see cref="StatusMapping"/> gives it.
/// Stateless; thread-safe.
/// </summary>
internal sealed class DomainFailureInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (CoordinationException failure)
        {
            throw StatusMapping.ToRpc(failure);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (CoordinationException failure)
        {
            throw StatusMapping.ToRpc(failure);
        }
    }
}
