using System.Net.Http;
using Grpc.Core;
using MeshNet.Control;
using MeshNet.Netmap;
using MeshNet.Protocol;

namespace MeshNet.Tests.Control;

/// <summary>gRPC failures → error codes, by the <c>meshnet-error</c> trailer and the status code, never the message.</summary>
[Trait("Category", "Unit")]
public sealed class ControlFailureTests
{
    private static readonly Uri Control = new("https://control.example.com");

    private static RpcException Rpc(StatusCode status, string? reason, string detail = "whatever the server says")
    {
        var trailers = new Metadata();
        if (reason is not null)
        {
            trailers.Add(ControlErrors.TrailerKey, reason);
        }
        return new RpcException(new Status(status, detail), trailers);
    }

    [Theory]
    [InlineData(ControlErrors.AuthKeyRequired, MeshErrorCode.AuthKeyRequired, false)]
    [InlineData(ControlErrors.AuthKeyUnknown, MeshErrorCode.AuthKeyUnknown, false)]
    [InlineData(ControlErrors.AuthKeyExpired, MeshErrorCode.AuthKeyExpired, false)]
    [InlineData(ControlErrors.AuthKeyUsedUp, MeshErrorCode.AuthKeyUsedUp, false)]
    [InlineData(ControlErrors.AuthKeyRevoked, MeshErrorCode.AuthKeyRevoked, false)]
    [InlineData(ControlErrors.TagsNotPermitted, MeshErrorCode.TagsNotPermitted, false)]
    [InlineData(ControlErrors.NodeKeyExpired, MeshErrorCode.NodeKeyExpired, false)]
    [InlineData(ControlErrors.NodeNotRegistered, MeshErrorCode.AuthKeyRequired, false)]
    [InlineData(ControlErrors.BadProof, MeshErrorCode.ControlRejected, false)]
    [InlineData(ControlErrors.StaleTimestamp, MeshErrorCode.ControlRejected, false)]
    [InlineData(ControlErrors.Replayed, MeshErrorCode.ControlRejected, true)]
    [InlineData(ControlErrors.TlsRequired, MeshErrorCode.ControlRejected, false)]
    [InlineData(ControlErrors.InvalidRequest, MeshErrorCode.ControlRejected, false)]
    public void TrailerReasonsMapToCodes(string reason, MeshErrorCode code, bool transient)
    {
        // The status code and message deliberately disagree with the reason: only the trailer counts.
        var failure = ControlFailure.Classify(Rpc(StatusCode.Unavailable, reason, "auth-key-unknown node-key-expired"), "Registration", Control);
        failure.Code.Should().Be(code);
        failure.Transient.Should().Be(transient);
        failure.Reason.Should().Be(reason);
        failure.Message.Should().Contain(reason).And.Contain(Control.ToString());
        var exception = failure.ToException();
        exception.ErrorCode.Should().Be(code);
        exception.InnerException.Should().BeOfType<RpcException>();
    }

    [Theory]
    [InlineData(StatusCode.Unavailable, MeshErrorCode.ControlUnreachable, true)]
    [InlineData(StatusCode.DeadlineExceeded, MeshErrorCode.ControlUnreachable, true)]
    [InlineData(StatusCode.ResourceExhausted, MeshErrorCode.ControlUnreachable, true)]
    [InlineData(StatusCode.Internal, MeshErrorCode.ControlUnreachable, true)]
    [InlineData(StatusCode.Unknown, MeshErrorCode.ControlUnreachable, true)]
    [InlineData(StatusCode.Unimplemented, MeshErrorCode.ControlRejected, false)]
    [InlineData(StatusCode.Unauthenticated, MeshErrorCode.ControlRejected, false)]
    [InlineData(StatusCode.PermissionDenied, MeshErrorCode.ControlRejected, false)]
    [InlineData(StatusCode.InvalidArgument, MeshErrorCode.ControlRejected, false)]
    public void WithoutATrailerTheStatusCodeDecides(StatusCode status, MeshErrorCode code, bool transient)
    {
        var failure = ControlFailure.Classify(Rpc(status, null, detail: "auth-key-expired"), "Registration", Control);
        failure.Code.Should().Be(code, "the message text is never parsed");
        failure.Transient.Should().Be(transient);
        failure.Reason.Should().BeNull();
    }

    [Fact]
    public void UnknownReasonsFallBackToTheStatusCode()
    {
        var failure = ControlFailure.Classify(Rpc(StatusCode.Unavailable, "some-future-reason"), "Map", Control);
        failure.Code.Should().Be(MeshErrorCode.ControlUnreachable);
        failure.Transient.Should().BeTrue();
    }

    [Fact]
    public void NetworkAndProtocolFailures()
    {
        ControlFailure.Classify(new HttpRequestException("refused"), "Map", Control).Code.Should().Be(MeshErrorCode.ControlUnreachable);
        ControlFailure.Classify(new IOException("reset"), "Map", Control).Transient.Should().BeTrue();
        var protocol = ControlFailure.Classify(new ControlProtocolException("a delta before any full map"), "Map", Control);
        protocol.Code.Should().Be(MeshErrorCode.ControlRejected);
        protocol.Transient.Should().BeTrue("the stream restarts without resuming");
        var ours = ControlFailure.Classify(new MeshException(MeshErrorCode.ControlRejected, "bad server key"), "Registration", Control);
        ours.Code.Should().Be(MeshErrorCode.ControlRejected);
        ours.Transient.Should().BeFalse();
    }
}
