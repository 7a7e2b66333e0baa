using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Tests.Security;

[Trait("Category", "Security")]
public sealed class IsolationAndInputTests
{
    [Fact]
    public async Task ANodeNeverReceivesAnotherTailnetsNetmap()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var acme = await harness.TailnetWithKeyAsync("acme");
        var globex = await harness.TailnetWithKeyAsync("globex");
        var (a1, a1Self) = await harness.JoinAsync(acme, "a1");
        var (a2, a2Self) = await harness.JoinAsync(acme, "a2");
        var (g1, g1Self) = await harness.JoinAsync(globex, "g1");
        var (g2, _) = await harness.JoinAsync(globex, "g2");

        using var a1Map = a1.Map();
        var full = (await a1Map.NextAsync()).Full;
        full.Peers.Select(peer => peer.Id).Should().Equal(a2Self.Self.Id);
        using var g1Map = g1.Map();
        (await g1Map.NextAsync()).Full.Peers.Should().OnlyContain(peer => peer.Name == "g2");

        // Changes in globex (join, online, endpoints, leave) never reach acme: the next thing a1 hears is acme's own change.
        using var g2Map = g2.Map();
        await g2Map.NextAsync();
        await g2.UpdateEndpointsAsync("192.0.2.99:1");
        await harness.JoinAsync(globex, "g3");
        await harness.Admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "globex", Id = g1Self.Self.Id }, harness.AdminHeaders());
        await a2.UpdateEndpointsAsync("192.0.2.2:2");
        var delta = await a1Map.NextDeltaAsync();
        delta.Patches.Single().Id.Should().Be(a2Self.Self.Id);

        // A session handle of another tailnet's node resumes nothing: it gets its own full netmap.
        using var stolen = a1.Map(g2Map.Session, g2Map.LastSequence);
        var again = await stolen.NextAsync();
        again.BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        again.Full.Peers.Should().OnlyContain(peer => peer.Id == a2Self.Self.Id);
        again.Session.Should().NotBe(g2Map.Session);

        // Administrators address nodes within their tailnet.
        await Errors.ExpectAsync(() => harness.Admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "globex", Id = a2Self.Self.Id },
            harness.AdminHeaders()).ResponseAsync, StatusCode.NotFound);
    }

    [Fact]
    public async Task MalformedOversizedAndOutOfOrderRequestsAreRefusedAndEveryoneElseIsServed()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (observer, _) = await harness.JoinAsync(key, "observer");
        var (worker, workerSelf) = await harness.JoinAsync(key, "worker");
        using var observerMap = observer.Map();
        await observerMap.NextAsync();

        var bad = harness.NewNode();
        // Malformed fields: InvalidArgument naming the field.
        var shortKey = bad.RegisterRequest(key);
        shortKey.NodeKey = Google.Protobuf.ByteString.CopyFrom(new byte[31]);
        await Errors.ExpectAsync(() => bad.Client.RegisterAsync(shortKey, bad.Node.Sign(harness.ServerKey, "Register", shortKey, bad.Now)).ResponseAsync,
            StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "node_key");
        await Errors.ExpectAsync(() => bad.RegisterAsync(key, new string('h', 300)), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "hostname");
        await Errors.ExpectAsync(() => bad.RegisterAsync(key, "host\u0007bell"), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "hostname");
        await Errors.ExpectAsync(() => bad.RegisterAsync(key, "h", false, "not-a-tag"), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "requested_tags");
        await Errors.ExpectAsync(() => bad.RegisterAsync(key, "h", false, [.. Enumerable.Range(0, 40).Select(i => $"tag:t{i}")]),
            StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "requested_tags");
        await Errors.ExpectAsync(() => bad.RegisterAsync(key + new string('x', 200)), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "auth_key");
        var rotation = bad.RegisterRequest(null);
        rotation.OldNodeKey = Google.Protobuf.ByteString.CopyFrom(new byte[5]);
        rotation.OldNodeKeyProof = Google.Protobuf.ByteString.CopyFrom(new byte[32]);
        await Errors.ExpectAsync(() => bad.RegisterAsync(rotation), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "old_node_key");
        await Errors.ExpectAsync(() => worker.UpdateEndpointsAsync("nonsense"), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "endpoints");
        await Errors.ExpectAsync(() => worker.UpdateEndpointsAsync("192.0.2.1"), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "endpoints");
        await Errors.ExpectAsync(() => worker.UpdateEndpointsAsync([.. Enumerable.Range(1, 33).Select(i => $"192.0.2.1:{i}")]),
            StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "endpoints");
        await Errors.ExpectAsync(() => worker.Map(new string('s', 65)).NextAsync(), StatusCode.InvalidArgument, ControlErrors.InvalidRequest, "session");

        // Oversized message: refused by gRPC's size limit before it is parsed.
        await Errors.ExpectAsync(() => bad.RegisterAsync(key, new string('h', 70_000)), StatusCode.ResourceExhausted);

        // Out of order: calls before Register, and a resume point ahead of the session.
        await Errors.ExpectAsync(() => bad.Map().NextAsync(), StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered, "Register first");
        await Errors.ExpectAsync(() => bad.UpdateEndpointsAsync("192.0.2.1:1"), StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered);
        await Errors.ExpectAsync(() => observer.Map(observerMap.Session, 1_000_000).NextAsync(), StatusCode.InvalidArgument,
            ControlErrors.InvalidRequest, "last_sequence");

        // Everyone else is still served: the observer's stream carries on undisturbed (the refused
        // resume did not replace it), registrations work.
        await worker.UpdateEndpointsAsync("192.0.2.7:7");
        var delta = await observerMap.NextDeltaAsync();
        delta.Patches.Single().Should().Match<PeerPatch>(patch => patch.Id == workerSelf.Self.Id && patch.Endpoints.Values.Single() == "192.0.2.7:7");
        (await harness.JoinAsync(key, "newcomer")).Response.Self.Name.Should().Be("newcomer");
    }
}
