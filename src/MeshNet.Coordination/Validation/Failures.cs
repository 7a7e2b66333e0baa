using Grpc.Core;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Validation;

/// <summary>
/// Builds the errors the service answers with: a gRPC status whose message says what is wrong
/// (never echoing secrets), and the <see cref="ControlErrors.TrailerKey"/> trailer carrying the
/// machine-readable reason.
/// </summary>
internal static class Failures
{
    public static RpcException Create(StatusCode code, string reason, string message) =>
        new(new Status(code, message), new Metadata { { ControlErrors.TrailerKey, reason } });

    /// <summary>A malformed, out-of-range or oversized field: InvalidArgument naming it.</summary>
    public static RpcException Invalid(string message) => Create(StatusCode.InvalidArgument, ControlErrors.InvalidRequest, message);

    /// <summary>The node is not registered (or no longer): FailedPrecondition.</summary>
    public static RpcException NotRegistered(string message) => Create(StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered, message);

    public static RpcException NodeKeyExpired() =>
        Create(StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired, "node key expired: rotate to a new key (Register with old_node_key) to come back");

    public static RpcException Unauthenticated(string reason, string message) => Create(StatusCode.Unauthenticated, reason, message);

    public static RpcException TlsRequired() =>
        Create(StatusCode.PermissionDenied, ControlErrors.TlsRequired, "plain HTTP/2 is accepted only from loopback; use TLS");
}
