using Grpc.Core;
using Grpc.Core.Interceptors;
using MeshNet.Coordination.Sharding;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The outermost interceptor of the Control and Admin services: a <see cref="CoordinationException"/>
/// thrown by the service's logic leaves as the gRPC status <see cref="StatusMapping"/> gives it,
/// and a store this server cannot reach (a broken or timed-out database connection) as Unavailable
/// with a retry time, so that clients try again or go to another server. Stateless; thread-safe.
/// </summary>
internal sealed class DomainFailureInterceptor(LeaseKeeper keeper) : Interceptor
{
    /// <summary>The one call answered without the store: a node's first contact.</summary>
    private const string ServerInfoMethod = "/meshnet.control.v1.Control/GetServerInfo";

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            RefuseWhileCutOff(context);
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (CoordinationException failure)
        {
            throw StatusMapping.ToRpc(failure);
        }
        catch (Exception failure) when (IsStoreUnreachable(failure, context))
        {
            throw StatusMapping.ToRpc(StoreUnreachable(failure));
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            RefuseWhileCutOff(context);
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (CoordinationException failure)
        {
            throw StatusMapping.ToRpc(failure);
        }
        catch (Exception failure) when (IsStoreUnreachable(failure, context))
        {
            throw StatusMapping.ToRpc(StoreUnreachable(failure));
        }
    }

    /// <summary>
    /// A server that has not reached the store for longer than the lease TTL refuses at once what
    /// needs the store (everything but GetServerInfo), so that clients go to another server instead
    /// of waiting on a database they would not get.
    /// </summary>
    private void RefuseWhileCutOff(ServerCallContext context)
    {
        if (keeper.CutOffFor is { } since && context.Method != ServerInfoMethod)
        {
            throw new CoordinationException(CoordinationErrorCode.StoreUnreachable,
                $"this server has not reached the coordination store for {since.TotalSeconds:0.0} s; try another server") { RetryAfter = TimeSpan.FromSeconds(1) };
        }
    }

    /// <summary>
    /// A store call that failed for want of the database (a broken or timed-out connection, a busy
    /// file): the caller may retry, here or at another server. Not when the call itself was canceled.
    /// </summary>
    private static bool IsStoreUnreachable(Exception failure, ServerCallContext context) =>
        !context.CancellationToken.IsCancellationRequested &&
        failure is System.Data.Common.DbException { IsTransient: true } or TimeoutException ||
        failure is System.Data.Common.DbException { InnerException: TimeoutException or IOException or System.Net.Sockets.SocketException };

    private static CoordinationException StoreUnreachable(Exception failure) =>
        new(CoordinationErrorCode.StoreUnreachable, $"the coordination store is unreachable from this server ({failure.GetType().Name}); retry, here or at another server")
        {
            RetryAfter = TimeSpan.FromMilliseconds(500),
        };
}
