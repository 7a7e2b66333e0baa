using Grpc.Core;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Tests.Infrastructure;

internal static class Errors
{
    /// <summary>Runs <paramref name="call"/>, expecting an RpcException with this status and (optionally) reason trailer.</summary>
    public static async Task<RpcException> ExpectAsync(Func<Task> call, StatusCode code, string? reason = null, string? messageContains = null)
    {
        var exception = (await call.Should().ThrowAsync<RpcException>()).Which;
        exception.StatusCode.Should().Be(code, exception.Status.Detail);
        if (reason is not null)
        {
            exception.Trailers.GetValue(ControlErrors.TrailerKey).Should().Be(reason);
        }
        if (messageContains is not null)
        {
            exception.Status.Detail.Should().Contain(messageContains);
        }
        return exception;
    }

    /// <summary>Runs <paramref name="call"/>, expecting a <see cref="CoordinationException"/> with this code.</summary>
    public static async Task<CoordinationException> ExpectAsync(Func<Task> call, CoordinationErrorCode code)
    {
        var exception = (await call.Should().ThrowAsync<CoordinationException>()).Which;
        exception.ErrorCode.Should().Be(code, exception.Message);
        return exception;
    }
}
