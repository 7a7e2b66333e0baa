using Grpc.Core;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Auth;

/// <summary>
/// The refusals of the authentication interceptors, which sit at the gRPC edge and answer with
/// a status directly: the <see cref="ControlErrors.TrailerKey"/> trailer carries the reason.
/// </summary>
internal static class AuthFailures
{
    public static RpcException Create(StatusCode code, string reason, string message) =>
        new(new Status(code, message), new Metadata { { ControlErrors.TrailerKey, reason } });

    public static RpcException Unauthenticated(string reason, string message) => Create(StatusCode.Unauthenticated, reason, message);

    public static RpcException Invalid(string message) => Create(StatusCode.InvalidArgument, ControlErrors.InvalidRequest, message);

    public static RpcException TlsRequired() =>
        Create(StatusCode.PermissionDenied, ControlErrors.TlsRequired, "plain HTTP/2 is accepted only from loopback; use TLS");
}
