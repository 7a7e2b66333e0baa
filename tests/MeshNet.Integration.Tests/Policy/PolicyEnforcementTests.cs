using System.Net;
using System.Text;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Protocol;
using MeshNet.Integration.Tests.Infrastructure;
using static MeshNet.Integration.Tests.Policy.PolicyTailnet;

namespace MeshNet.Integration.Tests.Policy;

/// <summary>
/// Policies saved on a real coordination service, enforced by real nodes' packet filters over
/// real WireGuard on loopback: each selector kind, port ranges, protocols, and a save that
/// denies and a later one that re-allows.
/// </summary>
[Trait("Category", "Integration")]
public sealed class PolicyEnforcementTests : IAsyncLifetime
{
    private PolicyTailnet _net = null!;

    public async Task InitializeAsync() => _net = await PolicyTailnet.StartAsync();

    public async Task DisposeAsync() => await _net.DisposeAsync();

    [Fact]
    public async Task APolicySaveDeniesAFlowOnEveryAffectedNodeAndALaterSaveReallowsIt()
    {
        var web1 = await _net.StartTaggedNodeAsync("web1", "tag:web");
        var web2 = await _net.StartTaggedNodeAsync("web2", "tag:web");
        var alice = await _net.StartUserNodeAsync("alice", Alice);
        var bob = await _net.StartUserNodeAsync("bob", Bob);
        MeshNode[] all = [web1, web2, alice, bob];
        foreach (var web in new[] { web1, web2 })
        {
            await _net.ServeAsync(web, 22);
            await _net.ServeAsync(web, 80);
        }
        await TestTailnet.WaitForPeerAsync(bob, "web2");
        (await TryConnectAsync(bob, web1, 22)).Should().BeNull("without a policy everything inside the tailnet is allowed");

        await _net.SaveAsync(all, """
            { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"] },
            { "action": "accept", "src": ["*"], "dst": ["tag:web:80"] },
            """, extra: $$"""  "groups": { "group:eng": ["{{Alice}}"] },""");
        foreach (var web in new[] { web1, web2 })
        {
            (await TryConnectAsync(bob, web, 22)).Should().Be(MeshErrorCode.PolicyDenied, $"bob is not in group:eng ({web.Name})");
            (await TryConnectAsync(bob, web, 80)).Should().BeNull();
            (await TryConnectAsync(alice, web, 22)).Should().BeNull();
            web.GetStatus().PacketsDeniedByPolicy.Should().BeGreaterThan(0);
        }

        await _net.SaveAsync(all, """
            { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:22"] },
            """, extra: $$"""  "groups": { "group:eng": ["{{Alice}}", "{{Bob}}"] },""");
        (await TryConnectAsync(bob, web1, 22)).Should().BeNull("bob joined group:eng");
        (await TryConnectAsync(bob, web2, 22)).Should().BeNull();
        (await TryConnectAsync(bob, web1, 80)).Should().Be(MeshErrorCode.PolicyDenied, "port 80 is no longer open to everyone");
    }

    [Fact]
    public async Task TagsHostsAndPortRangesSelectWhoMayConnectWhere()
    {
        var web = await _net.StartTaggedNodeAsync("web", "tag:web");
        var ci = await _net.StartTaggedNodeAsync("ci", "tag:ci");
        var alice = await _net.StartUserNodeAsync("alice", Alice);
        var bob = await _net.StartUserNodeAsync("bob", Bob);
        foreach (int port in new[] { 7999, 8000, 8010, 8011, 9000, 9443 })
        {
            await _net.ServeAsync(web, port);
        }
        await _net.SaveAsync([web, ci, alice, bob], """
            { "action": "accept", "src": ["tag:ci"], "dst": ["tag:web:9000"] },
            { "action": "accept", "src": ["bobs-box"], "dst": ["tag:web:9443"] },
            { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:8000-8010"] },
            """, extra: $$"""  "hosts": { "bobs-box": "{{V4(bob)}}/32" },""");

        (await TryConnectAsync(ci, web, 9000)).Should().BeNull("tag:ci may reach port 9000");
        (await TryConnectAsync(bob, web, 9000)).Should().Be(MeshErrorCode.PolicyDenied, "bob is not tag:ci");
        (await TryConnectAsync(bob, web, 9443)).Should().BeNull("the host alias names bob's address");
        (await TryConnectAsync(alice, web, 9443)).Should().Be(MeshErrorCode.PolicyDenied);
        (await TryConnectAsync(alice, web, 8000)).Should().BeNull("the first port of the range");
        (await TryConnectAsync(alice, web, 8010)).Should().BeNull("the last port of the range");
        (await TryConnectAsync(alice, web, 7999)).Should().Be(MeshErrorCode.PolicyDenied);
        (await TryConnectAsync(alice, web, 8011)).Should().Be(MeshErrorCode.PolicyDenied);
    }

    [Fact]
    public async Task AProtocolRuleAdmitsOnlyThatProtocol()
    {
        var web = await _net.StartTaggedNodeAsync("web", "tag:web");
        var alice = await _net.StartUserNodeAsync("alice", Alice);
        await _net.ServeAsync(web, 53);
        await using var dns = await web.ListenUdpAsync(53);
        await using var other = await web.ListenUdpAsync(54);
        await _net.SaveAsync([web, alice], """
            { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:53"], "proto": "udp" },
            """);

        (await TryConnectAsync(alice, web, 53)).Should().Be(MeshErrorCode.PolicyDenied, "only UDP is allowed on port 53");
        await using var socket = await alice.ListenUdpAsync(0);
        long deniedBefore = web.GetStatus().PacketsDeniedByPolicy;
        await socket.SendToAsync(Encoding.ASCII.GetBytes("denied"), new IPEndPoint(V4(web), 54));
        await socket.SendToAsync(Encoding.ASCII.GetBytes("query"), new IPEndPoint(V4(web), 53));

        var buffer = new byte[64];
        var received = await dns.ReceiveFromAsync(buffer).AsTask().WaitAsync(TestTailnet.Timeout);
        Encoding.ASCII.GetString(buffer, 0, received.ReceivedBytes).Should().Be("query");
        await TestTailnet.WaitUntilAsync(() => web.GetStatus().PacketsDeniedByPolicy > deniedBefore, "the datagram to port 54 to be denied");
        web.GetStatus().PolicyDenials.Should().ContainKey(MeshPolicyDenialReason.NoRule);
        using (var nothing = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            var receive = () => other.ReceiveFromAsync(new byte[64], nothing.Token).AsTask();
            await receive.Should().ThrowAsync<OperationCanceledException>("the datagram to port 54 was dropped by the filter, not queued");
        }

        // The reply to alice's datagram passes alice's own filter by connection tracking.
        await dns.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), (IPEndPoint)received.RemoteEndPoint);
        var reply = await socket.ReceiveFromAsync(buffer).AsTask().WaitAsync(TestTailnet.Timeout);
        Encoding.ASCII.GetString(buffer, 0, reply.ReceivedBytes).Should().Be("query");
    }

    [Fact]
    public async Task ARefusedPolicyNamesItsLineAndColumnOrFailingTestAndThePreviousOneStaysInForce()
    {
        var web = await _net.StartTaggedNodeAsync("web", "tag:web");
        var bob = await _net.StartUserNodeAsync("bob", Bob);
        await _net.ServeAsync(web, 22);
        ulong version = await _net.SaveAsync([web, bob], """{ "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:22"] },""");
        (await TryConnectAsync(bob, web, 22)).Should().Be(MeshErrorCode.PolicyDenied);

        // A missing comma on line 3.
        var syntax = await SetPolicyExpectingFailureAsync("{\n  \"acls\": [\n    { \"action\": \"accept\" \"src\": [\"*\"], \"dst\": [\"*:*\"] },\n  ],\n}");
        syntax.StatusCode.Should().Be(StatusCode.InvalidArgument);
        syntax.Status.Detail.Should().MatchRegex(@"^line 3, column \d+: ");
        syntax.Trailers.GetValue(ControlErrors.PolicyLineTrailer).Should().Be("3");
        int.Parse(syntax.Trailers.GetValue(ControlErrors.PolicyColumnTrailer)!, System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(20);

        // A port out of range, on line 4.
        var port = await SetPolicyExpectingFailureAsync("{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"*\"],\n      \"dst\": [\"tag:web:70000\"] },\n  ],\n}");
        port.StatusCode.Should().Be(StatusCode.InvalidArgument);
        port.Trailers.GetValue(ControlErrors.PolicyLineTrailer).Should().Be("4");
        port.Status.Detail.Should().StartWith("line 4, column ").And.Contain("70000");

        // A policy whose own tests fail is not saved.
        var failing = await SetPolicyExpectingFailureAsync($$"""
            {
            {{Preamble}}
              "acls": [ { "action": "accept", "src": ["*"], "dst": ["tag:web:22"] } ],
              "tests": [ { "src": "{{Bob}}", "deny": ["tag:web:22"] } ],
            }
            """);
        failing.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        failing.Status.Detail.Should().Contain(Bob);

        // Nothing changed: the service keeps the old policy, the nodes enforce it.
        var saved = await _net.Tailnet.Admin.GetPolicyAsync(new GetPolicyRequest { Tailnet = "acme" }, _net.Tailnet.AdminHeaders);
        saved.Version.Should().Be(version);
        web.GetStatus().PolicyVersion.Should().Be(version);
        (await TryConnectAsync(bob, web, 22)).Should().Be(MeshErrorCode.PolicyDenied);
    }

    private async Task<RpcException> SetPolicyExpectingFailureAsync(string policy)
    {
        var call = () => _net.Tailnet.Admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = policy }, _net.Tailnet.AdminHeaders).ResponseAsync;
        return (await call.Should().ThrowAsync<RpcException>()).Which;
    }

    [Fact]
    public async Task WhoIsReturnsTheNameUserTagsAndAddressesBehindATailnetAddress()
    {
        var web = await _net.StartTaggedNodeAsync("web", "tag:web");
        var alice = await _net.StartUserNodeAsync("alice", Alice);
        await TestTailnet.WaitForPeerAsync(alice, "web");
        await TestTailnet.WaitForPeerAsync(web, "alice");

        var aliceSeenByWeb = await web.WhoIsAsync(V4(alice));
        aliceSeenByWeb.Should().NotBeNull();
        aliceSeenByWeb!.Name.Should().Be("alice");
        aliceSeenByWeb.User.Should().Be(Alice);
        aliceSeenByWeb.Tags.Should().BeEmpty();
        aliceSeenByWeb.Addresses.Should().BeEquivalentTo(alice.Addresses);

        var webSeenByAlice = await alice.WhoIsAsync(web.Addresses[^1]);
        webSeenByAlice!.Name.Should().Be("web");
        webSeenByAlice.Tags.Should().Equal("tag:web");
        webSeenByAlice.User.Should().BeEmpty("tagged nodes belong to their tags, not to a user");

        (await alice.WhoIsAsync(IPAddress.Parse("100.127.255.254"))).Should().BeNull();
        (await alice.WhoIsAsync(V4(alice)))!.Name.Should().Be("alice");
    }
}
