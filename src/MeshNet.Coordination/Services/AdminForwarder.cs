using Grpc.Core;
using MeshNet.Protocol;
using AdminApi = MeshNet.Control.V1.Admin;

namespace MeshNet.Coordination.Services;

/// <summary>
/// Forwards an Admin write to the server that serves its tailnet, with the same admin token and
/// an idempotency key (the caller's, or one made for the request), so that a write reaching a
/// server that does not serve the tailnet, or one that waited on a handover, is applied at the
/// owner exactly once. Follows at most <see cref="MaxHops"/> redirects and waits out "no owner"
/// answers (a failover or a move in progress) for up to <see cref="MaxWait"/>.
/// </summary>
/// <remarks>Thread-safe.</remarks>
internal sealed class AdminForwarder
{
    private const int MaxHops = 4;
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(30);

    private readonly PeerChannels _peers;
    private readonly TimeProvider _time;

    public AdminForwarder(PeerChannels peers, TimeProvider time)
    {
        _peers = peers;
        _time = time;
    }

    /// <summary>
    /// Runs <paramref name="local"/>; when it fails with NotOwner (or NoOwner), runs
    /// <paramref name="remote"/> at the owner instead, following further redirects.
    /// </summary>
    public async Task<TResponse> RunAsync<TResponse>(ServerCallContext context, Func<string?, Task<TResponse>> local,
        Func<AdminApi.AdminClient, CallOptions, Task<TResponse>> remote)
    {
        var key = context.RequestHeaders.GetValue(ControlErrors.IdempotencyKeyHeader);
        if (key is { Length: 0 or > Storage.TailnetFence.MaxIdempotencyKeyLength })
        {
            throw Validation.Failures.Invalid($"{ControlErrors.IdempotencyKeyHeader} must have 1 to {Storage.TailnetFence.MaxIdempotencyKeyLength} characters");
        }
        try
        {
            return await local(key).ConfigureAwait(false);
        }
        catch (CoordinationException failure) when (failure.ErrorCode is CoordinationErrorCode.NotOwner or CoordinationErrorCode.NoOwner)
        {
            key ??= Guid.NewGuid().ToString("N");
            return await ForwardAsync(context, failure, key, local, remote).ConfigureAwait(false);
        }
    }

    private async Task<TResponse> ForwardAsync<TResponse>(ServerCallContext context, CoordinationException failure, string key,
        Func<string?, Task<TResponse>> local, Func<AdminApi.AdminClient, CallOptions, Task<TResponse>> remote)
    {
        long started = _time.GetTimestamp();
        int hops = 0;
        while (true)
        {
            if (failure.ErrorCode == CoordinationErrorCode.NoOwner)
            {
                if (_time.GetElapsedTime(started) > MaxWait)
                {
                    throw failure;
                }
                await Task.Delay(failure.RetryAfter ?? TimeSpan.FromMilliseconds(100), _time, context.CancellationToken).ConfigureAwait(false);
                try
                {
                    return await local(key).ConfigureAwait(false);
                }
                catch (CoordinationException again) when (again.ErrorCode is CoordinationErrorCode.NotOwner or CoordinationErrorCode.NoOwner)
                {
                    failure = again;
                    continue;
                }
            }
            if (++hops > MaxHops)
            {
                throw failure;
            }
            var options = _peers.Options(key, context.Deadline, context.CancellationToken);
            try
            {
                return await remote(new AdminApi.AdminClient(_peers.Channel(failure.OwnerUrl!)), options).ConfigureAwait(false);
            }
            catch (RpcException rpc) when (rpc.StatusCode == StatusCode.Unavailable &&
                rpc.Trailers.GetValue(ControlErrors.TrailerKey) is ControlErrors.NotOwner or ControlErrors.NoOwner)
            {
                failure = FromTrailers(rpc);
            }
        }
    }

    private static CoordinationException FromTrailers(RpcException rpc)
    {
        var redirect = rpc.Trailers.GetValue(ControlErrors.RedirectTrailer);
        if (redirect is { Length: > 0 })
        {
            ulong.TryParse(rpc.Trailers.GetValue(ControlErrors.EpochTrailer), out var epoch);
            return new CoordinationException(CoordinationErrorCode.NotOwner, rpc.Status.Detail) { OwnerUrl = redirect, OwnerEpoch = epoch };
        }
        long.TryParse(rpc.Trailers.GetValue(ControlErrors.RetryAfterTrailer), out var retry);
        return new CoordinationException(CoordinationErrorCode.NoOwner, rpc.Status.Detail) { RetryAfter = TimeSpan.FromMilliseconds(Math.Clamp(retry, 10, 5000)) };
    }
}
