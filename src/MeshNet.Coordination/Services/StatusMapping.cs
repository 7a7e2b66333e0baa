using System.Globalization;
using Grpc.Core;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Services;

/// <summary>
/// The edge's translation of domain failures into gRPC: a status code, the message, the
/// <c>meshnet-error</c> reason trailer, and per code the redirect, epoch, retry and policy
/// position trailers. Pure; thread-safe.
/// </summary>
internal static class StatusMapping
{
    public static RpcException ToRpc(CoordinationException failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        var (status, reason) = failure.ErrorCode switch
        {
            CoordinationErrorCode.InvalidRequest => (StatusCode.InvalidArgument, ControlErrors.InvalidRequest),
            CoordinationErrorCode.NotFound => (StatusCode.NotFound, null),
            CoordinationErrorCode.AlreadyExists => (StatusCode.AlreadyExists, null),
            CoordinationErrorCode.AuthKeyRequired => (StatusCode.PermissionDenied, ControlErrors.AuthKeyRequired),
            CoordinationErrorCode.AuthKeyUnknown => (StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown),
            CoordinationErrorCode.AuthKeyExpired => (StatusCode.PermissionDenied, ControlErrors.AuthKeyExpired),
            CoordinationErrorCode.AuthKeyUsedUp => (StatusCode.PermissionDenied, ControlErrors.AuthKeyUsedUp),
            CoordinationErrorCode.AuthKeyRevoked => (StatusCode.PermissionDenied, ControlErrors.AuthKeyRevoked),
            CoordinationErrorCode.TagsNotPermitted => (StatusCode.PermissionDenied, ControlErrors.TagsNotPermitted),
            CoordinationErrorCode.NodeKeyExpired => (StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired),
            CoordinationErrorCode.NodeNotRegistered => (StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered),
            CoordinationErrorCode.InvalidPolicy => (StatusCode.InvalidArgument, ControlErrors.InvalidPolicy),
            CoordinationErrorCode.PolicyTestFailed => (StatusCode.FailedPrecondition, ControlErrors.PolicyTestFailed),
            CoordinationErrorCode.NotOwner => (StatusCode.Unavailable, ControlErrors.NotOwner),
            CoordinationErrorCode.NoOwner => (StatusCode.Unavailable, ControlErrors.NoOwner),
            CoordinationErrorCode.Quarantined => (StatusCode.Unavailable, ControlErrors.Quarantined),
            CoordinationErrorCode.RateLimited => (StatusCode.ResourceExhausted, ControlErrors.RateLimited),
            CoordinationErrorCode.Conflict => (StatusCode.Aborted, ControlErrors.InvalidRequest),
            CoordinationErrorCode.ResourceExhausted => (StatusCode.ResourceExhausted, null),
            CoordinationErrorCode.BadProof => (StatusCode.Unauthenticated, ControlErrors.BadProof),
            CoordinationErrorCode.StoreUnreachable => (StatusCode.Unavailable, ControlErrors.StoreUnreachable),
            _ => (StatusCode.Unavailable, (string?)null),
        };
        var trailers = new Metadata();
        if (reason is not null)
        {
            trailers.Add(ControlErrors.TrailerKey, reason);
        }
        if (failure.OwnerUrl is { } owner)
        {
            trailers.Add(ControlErrors.RedirectTrailer, owner);
            trailers.Add(ControlErrors.EpochTrailer, failure.OwnerEpoch.ToString(CultureInfo.InvariantCulture));
        }
        if (failure.RetryAfter is { } retry)
        {
            trailers.Add(ControlErrors.RetryAfterTrailer, ((long)Math.Ceiling(retry.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture));
        }
        if (failure.ErrorCode is CoordinationErrorCode.InvalidPolicy or CoordinationErrorCode.PolicyTestFailed)
        {
            trailers.Add(ControlErrors.PolicyLineTrailer, failure.PolicyLine.ToString(CultureInfo.InvariantCulture));
            trailers.Add(ControlErrors.PolicyColumnTrailer, failure.PolicyColumn.ToString(CultureInfo.InvariantCulture));
        }
        return new RpcException(new Status(status, failure.Message), trailers);
    }
}
