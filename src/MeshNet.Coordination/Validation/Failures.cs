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

    /// <summary>The node's key has expired: only a new key registered with a valid auth key brings it back.</summary>
    public static RpcException NodeKeyExpired(string? detail = null) =>
        Create(StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired,
            "node key expired: re-authenticate with a valid auth key (Register a new key with old_node_key, its proof and auth_key) to come back"
            + (detail is null ? "" : $"; {detail}"));

    public static RpcException Unauthenticated(string reason, string message) => Create(StatusCode.Unauthenticated, reason, message);

    /// <summary>
    /// A policy that does not parse or validate (InvalidArgument), or whose tests fail
    /// (FailedPrecondition): "line L, column C: problem", with the position in the policy trailers.
    /// </summary>
    public static RpcException Policy(MeshNet.Coordination.Policy.PolicyException exception) =>
        new(new Status(exception.IsTestFailure ? StatusCode.FailedPrecondition : StatusCode.InvalidArgument, exception.Message), new Metadata
        {
            { ControlErrors.TrailerKey, exception.IsTestFailure ? ControlErrors.PolicyTestFailed : ControlErrors.InvalidPolicy },
            { ControlErrors.PolicyLineTrailer, exception.Line.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            { ControlErrors.PolicyColumnTrailer, exception.Column.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        });

    public static RpcException TlsRequired() =>
        Create(StatusCode.PermissionDenied, ControlErrors.TlsRequired, "plain HTTP/2 is accepted only from loopback; use TLS");
}
