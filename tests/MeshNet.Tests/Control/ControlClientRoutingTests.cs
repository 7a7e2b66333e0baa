using Grpc.Core;
using MeshNet.Control;
using MeshNet.Protocol;

namespace MeshNet.Tests.Control;

/// <summary>Where a control attempt goes after a failure: redirects, other servers, retry times. No connection is made.</summary>
[Trait("Category", "Unit")]
public sealed class ControlClientRoutingTests
{
    private static readonly Uri First = new("http://127.0.0.1:7001");
    private static readonly Uri Second = new("http://127.0.0.1:7002");
    private static readonly Uri Owner = new("http://127.0.0.1:7003");

    private static RpcException Failure(StatusCode status, string? reason = null, string? redirect = null, string? retryAfterMs = null, ulong epoch = 9)
    {
        var trailers = new Metadata();
        if (reason is not null)
        {
            trailers.Add(ControlErrors.TrailerKey, reason);
        }
        if (redirect is not null)
        {
            trailers.Add(ControlErrors.RedirectTrailer, redirect);
            trailers.Add(ControlErrors.EpochTrailer, epoch.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        if (retryAfterMs is not null)
        {
            trailers.Add(ControlErrors.RetryAfterTrailer, retryAfterMs);
        }
        return new RpcException(new Status(status, "test"), trailers);
    }

    [Fact]
    public void ARedirectSwitchesToTheOwnerAndAddsItToTheKnownServers()
    {
        using var client = new ControlClient([First, Second], null, null);
        var route = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, Owner.ToString()));
        route.Kind.Should().Be(ControlRouteKind.Redirected);
        route.RetryAfter.Should().Be(TimeSpan.Zero);
        client.Url.Should().Be(Owner);
        client.Servers.Should().Equal(First, Second, Owner);

        client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, "http://127.0.0.1:7002/")).Kind.Should().Be(ControlRouteKind.Redirected);
        client.Url.Should().Be(Second);
        client.Servers.Should().HaveCount(3, "a server is known once");
    }

    [Fact]
    public void ARedirectToPlainHttpOffLoopbackIsNotFollowed()
    {
        using var client = new ControlClient([First, Second], null, null);
        var route = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, "http://control.example.com:8080"));
        route.Kind.Should().Be(ControlRouteKind.Rotated, "the transport policy holds for redirects too");
        client.Url.Should().Be(Second);
        client.Servers.Should().Equal(First, Second);
    }

    [Fact]
    public void NoOwnerOrAnUnreachableServerRotatesAndCarriesTheServiceRetryTime()
    {
        using var client = new ControlClient([First, Second], null, null);
        var noOwner = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NoOwner, retryAfterMs: "1500"));
        noOwner.Kind.Should().Be(ControlRouteKind.Rotated);
        noOwner.RetryAfter.Should().Be(TimeSpan.FromMilliseconds(1500));
        client.Url.Should().Be(Second);

        client.Route(new HttpRequestException("connection refused")).Kind.Should().Be(ControlRouteKind.Rotated);
        client.Url.Should().Be(First, "rotation wraps around");

        var refused = client.Route(Failure(StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown));
        refused.Kind.Should().Be(ControlRouteKind.Stay, "a refusal is the same everywhere");
        client.Url.Should().Be(First);
    }

    [Fact]
    public void ARedirectToAServerJustFoundDownIsFollowedOnlyUnderANewerEpoch()
    {
        using var client = new ControlClient([First, Second, Owner], null, null);
        client.SawEpoch(9);
        client.Route(new HttpRequestException("connection refused")).Kind.Should().Be(ControlRouteKind.Rotated, "First is down");
        client.Url.Should().Be(Second);

        var toDeadOwner = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 9));
        toDeadOwner.Kind.Should().Be(ControlRouteKind.Rotated, "the dead owner's lease has not expired yet: no bouncing back to it");
        toDeadOwner.RetryAfter.Should().BePositive();
        client.Url.Should().Be(Owner);

        var afterRestart = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 10));
        afterRestart.Kind.Should().Be(ControlRouteKind.Redirected, "a newer epoch means First came back and took the tailnet");
        client.Url.Should().Be(First);

        client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, Second.ToString(), epoch: 9)).Kind
            .Should().Be(ControlRouteKind.Redirected, "following a redirect cleared nothing it should not: Second was never down");
    }

    [Fact]
    public void AServerThatAnswersIsNoLongerPassedOverSoADeadOwnerIsNotTriedAgain()
    {
        // First is the dead owner; Second and Owner were down in an earlier outage (their marks
        // are still fresh) but are back. Once every server is marked, rotation goes round blindly.
        using var client = new ControlClient([First, Second, Owner], null, null);
        client.SawEpoch(5);
        var refused = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new HttpRequestException("refused")));
        client.Route(refused).Next.Should().Be(Second);
        client.Route(refused).Next.Should().Be(Owner);
        client.Route(refused).Next.Should().Be(First, "every server is marked: round robin");
        client.Route(refused).Next.Should().Be(Second);

        // Second answers in its own words (nobody serves the tailnet yet): it is up again, and the
        // next attempt goes back to it rather than on to the marked Owner and the dead First.
        var noOwner = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NoOwner, retryAfterMs: "800"));
        noOwner.Next.Should().Be(Second);
        noOwner.RetryAfter.Should().Be(TimeSpan.FromMilliseconds(800));
        var toDead = client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 5));
        toDead.Kind.Should().Be(ControlRouteKind.Rotated, "the dead owner's lease has not expired yet");
        toDead.Next.Should().Be(Second);

        // A message on a stream clears the mark too.
        client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, Owner.ToString(), epoch: 6)).Kind.Should().Be(ControlRouteKind.Redirected,
            "a newer epoch: Owner took the tailnet");
        client.Heard();
        client.Route(refused).Next.Should().Be(Second, "the server that answered last is preferred over the dead First");
    }

    [Fact]
    public void OnlyAFailureToReachAServerOrItsWordThatItIsCutOffPassesItOver()
    {
        using var client = new ControlClient([First, Second], null, null);
        client.SawEpoch(3);

        // A status the server itself sent (reloading a tailnet): it is up; a redirect back to it is followed.
        client.Route(Failure(StatusCode.Unavailable)).Kind.Should().Be(ControlRouteKind.Rotated);
        client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 3)).Kind.Should().Be(ControlRouteKind.Redirected);

        // The client's own failure to connect (gRPC reports it as Unavailable with the cause attached).
        var refused = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new HttpRequestException("refused")));
        client.Route(refused).Kind.Should().Be(ControlRouteKind.Rotated);
        client.Url.Should().Be(Second);
        client.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 3)).Kind.Should().Be(ControlRouteKind.Rotated, "First was just found down");

        // A server cut off from the store says so: passed over as well.
        using var other = new ControlClient([First, Second], null, null);
        other.Route(Failure(StatusCode.Unavailable, ControlErrors.StoreUnreachable, retryAfterMs: "1000")).RetryAfter.Should().Be(TimeSpan.FromSeconds(1));
        other.Url.Should().Be(Second);
        other.Route(Failure(StatusCode.Unavailable, ControlErrors.NotOwner, First.ToString(), epoch: 0)).Kind.Should().Be(ControlRouteKind.Rotated);
    }

    [Fact]
    public void ServersListedByTheNetmapAreLearnedUnderTheTransportPolicy()
    {
        using var client = new ControlClient([First], null, null);
        client.Learn(["https://c2.example.com", "http://c3.example.com", "not a url", "https://c2.example.com:443/", "http://[::1]:9000"]);
        client.Servers.Select(url => url.ToString()).Should().Equal("http://127.0.0.1:7001/", "https://c2.example.com/", "http://[::1]:9000/");
        client.Url.Should().Be(First, "learning does not move the client");
    }
}
