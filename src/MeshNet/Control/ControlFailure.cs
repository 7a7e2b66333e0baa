using System.Net.Http;
using System.Net.Sockets;
using Grpc.Core;
using MeshNet.Netmap;
using MeshNet.Protocol;

namespace MeshNet.Control;

/// <summary>
/// A failed control call, classified: the <see cref="MeshErrorCode"/> it means, whether trying
/// again may help, and the service's machine-readable reason (the <c>meshnet-error</c> trailer,
/// <see cref="ControlErrors"/>). Classification reads the trailer and the gRPC status code,
/// never the message text.
/// </summary>
/// <param name="Code">What the failure means to the caller.</param>
/// <param name="Message">A human-readable explanation (never key material or the auth key).</param>
/// <param name="Transient">True when the same call may succeed later (connectivity, overload, a protocol hiccup).</param>
/// <param name="Reason">The <c>meshnet-error</c> trailer, when the service sent one.</param>
/// <param name="Exception">The original exception.</param>
internal sealed record ControlFailure(MeshErrorCode Code, string Message, bool Transient, string? Reason, Exception Exception)
{
    /// <summary>The exception a caller sees.</summary>
    public MeshException ToException() => new(Code, Message, Exception);

    /// <summary>Classifies a failure of <paramref name="operation"/> against <paramref name="control"/>.</summary>
    public static ControlFailure Classify(Exception exception, string operation, Uri control)
    {
        ArgumentNullException.ThrowIfNull(exception);
        switch (exception)
        {
            case RpcException rpc:
                return FromRpc(rpc, operation, control);
            case ControlProtocolException protocol:
                return new(MeshErrorCode.ControlRejected, $"The coordination service at {control} broke the protocol during {operation}: {protocol.Message}.", true, null, exception);
            case MeshException mesh:
                return new(mesh.ErrorCode, mesh.Message, mesh.ErrorCode == MeshErrorCode.ControlUnreachable, null, exception);
            case HttpRequestException or IOException or SocketException or TimeoutException:
                return new(MeshErrorCode.ControlUnreachable, $"The coordination service at {control} could not be reached ({operation}): {exception.Message}", true, null, exception);
            default:
                return new(MeshErrorCode.InternalError, $"{operation} failed unexpectedly: {exception.Message}", true, null, exception);
        }
    }

    private static ControlFailure FromRpc(RpcException rpc, string operation, Uri control)
    {
        string? reason = rpc.Trailers.GetValue(ControlErrors.TrailerKey);
        string detail = string.IsNullOrEmpty(rpc.Status.Detail) ? rpc.StatusCode.ToString() : rpc.Status.Detail;
        (MeshErrorCode code, bool transient, string text) = reason switch
        {
            ControlErrors.AuthKeyRequired => (MeshErrorCode.AuthKeyRequired, false, "the node is not registered and no auth key was given"),
            ControlErrors.AuthKeyUnknown => (MeshErrorCode.AuthKeyUnknown, false, "the auth key is not known to the service"),
            ControlErrors.AuthKeyExpired => (MeshErrorCode.AuthKeyExpired, false, "the auth key has expired"),
            ControlErrors.AuthKeyUsedUp => (MeshErrorCode.AuthKeyUsedUp, false, "the auth key is a one-off key that was already used"),
            ControlErrors.AuthKeyRevoked => (MeshErrorCode.AuthKeyRevoked, false, "the auth key was revoked"),
            ControlErrors.TagsNotPermitted => (MeshErrorCode.TagsNotPermitted, false, "the node asked for tags it may not have"),
            ControlErrors.NodeKeyExpired => (MeshErrorCode.NodeKeyExpired, false,
                "the node's key has expired; an expired key comes back only with a valid auth key (MeshNodeOptions.AuthKey)"),
            ControlErrors.NodeNotRegistered => (MeshErrorCode.AuthKeyRequired, false, "the service does not know this node (it may have been deleted); an auth key is needed to register again"),
            ControlErrors.BadProof => (MeshErrorCode.ControlRejected, false, "the service did not accept the node's proof of key"),
            ControlErrors.StaleTimestamp => (MeshErrorCode.ControlRejected, false, "the node's clock is too far from the service's"),
            ControlErrors.Replayed => (MeshErrorCode.ControlRejected, true, "the service saw the call's nonce before"),
            ControlErrors.TlsRequired => (MeshErrorCode.ControlRejected, false, "the service requires TLS from this address"),
            ControlErrors.InvalidRequest => (MeshErrorCode.ControlRejected, false, "the service found the request invalid"),
            _ => FromStatus(rpc.StatusCode),
        };
        string message = reason is null
            ? $"{operation} at {control} failed: {text} ({rpc.StatusCode}: {detail})."
            : $"{operation} at {control} failed: {text} ({reason}: {detail}).";
        return new ControlFailure(code, message, transient, reason, rpc);
    }

    private static (MeshErrorCode, bool, string) FromStatus(StatusCode status) => status switch
    {
        StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.ResourceExhausted or StatusCode.Aborted
            or StatusCode.Internal or StatusCode.Unknown or StatusCode.Cancelled or StatusCode.DataLoss =>
            (MeshErrorCode.ControlUnreachable, true, "the coordination service is unreachable or unavailable"),
        StatusCode.Unimplemented =>
            (MeshErrorCode.ControlRejected, false, "the server does not implement the MeshNet control protocol v1"),
        StatusCode.Unauthenticated or StatusCode.PermissionDenied =>
            (MeshErrorCode.ControlRejected, false, "the service refused the node"),
        _ => (MeshErrorCode.ControlRejected, false, "the service rejected the call"),
    };
}
