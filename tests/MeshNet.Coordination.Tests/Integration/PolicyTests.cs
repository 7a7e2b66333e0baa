using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Tests.Integration;

[Trait("Category", "Integration")]
public sealed class PolicyTests
{
    // alice (eng) may reach web on 443; web may reach db; bob is in no rule.
    private const string Policy = """
        {
          "groups": { "group:eng": ["alice@example.com"] },
          "tagOwners": { "tag:web": ["group:eng"], "tag:db": [] },
          "acls": [
            { "action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"] },
            { "action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"] },
          ],
          "tests": [ { "src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["tag:db:5432"] } ],
        }
        """;

    private sealed record Member(NodeClient Client, ulong Id, MapStreamReader Map);

    private static async Task<Member> JoinAsync(CoordinationHarness harness, string name, string? user = null, params string[] tags)
    {
        var key = await harness.Server.CreateAuthKeyAsync("acme", tags: tags, user: user);
        var (client, response) = await harness.JoinAsync(key, name);
        var map = client.Map();
        (await map.NextAsync()).BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        return new Member(client, response.Self.Id, map);
    }

    /// <summary>Skips the join and online deltas from before the policy change; the policy's delta is the first with a version.</summary>
    private static async Task<MapDelta> NextPolicyDeltaAsync(MapStreamReader map)
    {
        while (true)
        {
            var delta = await map.NextDeltaAsync();
            if (delta.HasPolicyVersion)
            {
                return delta;
            }
            delta.FilterChunks.Should().BeEmpty();
        }
    }

    [Fact]
    public async Task SavingAPolicySendsEachAffectedNodeOneDeltaAndALaterSaveReallows()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        var alice = await JoinAsync(harness, "alice", "alice@example.com");
        var web = await JoinAsync(harness, "web", null, "tag:web");
        var db = await JoinAsync(harness, "db", null, "tag:db");
        var bob = await JoinAsync(harness, "bob", "bob@example.com");

        var response = await harness.Admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = Policy }, harness.AdminHeaders());
        response.Version.Should().Be(1);
        response.NodesAffected.Should().Be(4);

        var aliceDelta = await NextPolicyDeltaAsync(alice.Map);
        aliceDelta.PeersRemoved.Should().BeEquivalentTo([db.Id, bob.Id]);
        aliceDelta.PeersChanged.Should().BeEmpty();
        aliceDelta.FilterChunks.Should().BeEmpty("alice is a destination of no rule");
        aliceDelta.FilterEnforced.Should().BeTrue();
        aliceDelta.PolicyVersion.Should().Be(1);

        var webDelta = await NextPolicyDeltaAsync(web.Map);
        webDelta.PeersRemoved.Should().Equal(bob.Id);
        var chunk = webDelta.FilterChunks.Single();
        chunk.Name.Should().StartWith("acl-");
        chunk.Rules.Single().Sources.Should().HaveCount(2).And.Contain(source => source.EndsWith("/32", StringComparison.Ordinal));
        chunk.Rules.Single().Destinations.Single().Should().Be(new PortRange { Prefix = "*", FirstPort = 443, LastPort = 443 });

        var dbDelta = await NextPolicyDeltaAsync(db.Map);
        dbDelta.PeersRemoved.Should().BeEquivalentTo([alice.Id, bob.Id]);
        dbDelta.FilterChunks.Single().Rules.Single().Destinations.Single().FirstPort.Should().Be(5432);

        var bobDelta = await NextPolicyDeltaAsync(bob.Map);
        bobDelta.PeersRemoved.Should().BeEquivalentTo([alice.Id, web.Id, db.Id]);

        // Bob's endpoints change: nobody may see him, so nobody hears of it; web's change reaches alice and db only.
        await bob.Client.UpdateEndpointsAsync("192.0.2.9:1");
        await web.Client.UpdateEndpointsAsync("192.0.2.2:1");
        (await alice.Map.NextDeltaAsync()).Patches.Single().Id.Should().Be(web.Id);
        (await db.Map.NextDeltaAsync()).Patches.Single().Id.Should().Be(web.Id);

        // Saving the same policy again changes no view: every node hears only the new version.
        (await harness.Admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = Policy }, harness.AdminHeaders())).NodesAffected.Should().Be(0);
        foreach (var node in new[] { bob, web })
        {
            var versionOnly = await NextPolicyDeltaAsync(node.Map);
            versionOnly.Should().Be(new MapDelta { PolicyVersion = 2 }, "an unchanged view gets the version and nothing else");
        }

        // Removing the policy re-allows everything: bob sees everyone again.
        var removal = await harness.Admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = "  " }, harness.AdminHeaders());
        removal.Version.Should().Be(3);
        var again = await NextPolicyDeltaAsync(bob.Map);
        again.PeersChanged.Select(peer => peer.Id).Should().BeEquivalentTo([alice.Id, web.Id, db.Id]);
        again.FilterEnforced.Should().BeFalse();
        again.PolicyVersion.Should().Be(0);
        var webAgain = await NextPolicyDeltaAsync(web.Map);
        webAgain.PeersChanged.Single().Id.Should().Be(bob.Id);
        webAgain.FilterChunks.Single().Rules.Should().BeEmpty("an empty chunk deletes the name");
        harness.Server.Counters.PoliciesSaved.Should().Be(3);
        harness.Server.Counters.PolicyDeltasSent.Should().Be(8);
    }

    [Fact]
    public async Task AnInvalidPolicyIsRefusedWithItsPositionAndTheOldOneStays()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        (await harness.Server.SetPolicyAsync("acme", Policy)).Should().Be(1);

        var invalid = await Errors.ExpectAsync(() => harness.Admin.SetPolicyAsync(
            new SetPolicyRequest { Tailnet = "acme", Policy = "{\n  \"acls\": [\n    { \"action\": \"accept\", \"src\": [\"group:ops\"], \"dst\": [\"*:*\"] },\n  ],\n}" },
            harness.AdminHeaders()).ResponseAsync, StatusCode.InvalidArgument, ControlErrors.InvalidPolicy);
        invalid.Status.Detail.Should().Be("line 3, column 35: undefined group \"group:ops\"");
        invalid.Trailers.GetValue(ControlErrors.PolicyLineTrailer).Should().Be("3");
        invalid.Trailers.GetValue(ControlErrors.PolicyColumnTrailer).Should().Be("35");

        var failing = Policy.Replace("\"deny\": [\"tag:db:5432\"]", "\"deny\": [\"tag:web:443\"]", StringComparison.Ordinal);
        var testFailure = await Errors.ExpectAsync(() => harness.Admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = failing },
            harness.AdminHeaders()).ResponseAsync, StatusCode.FailedPrecondition, ControlErrors.PolicyTestFailed);
        testFailure.Status.Detail.Should().Contain("expected to deny");

        var current = await harness.Admin.GetPolicyAsync(new GetPolicyRequest { Tailnet = "acme" }, harness.AdminHeaders());
        current.Policy.Should().Be(Policy);
        current.Version.Should().Be(1);
    }

    [Fact]
    public async Task ANodeJoiningUnderAPolicyIsSeenOnlyByNodesAllowedTo()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        await harness.Server.SetPolicyAsync("acme", Policy);
        var alice = await JoinAsync(harness, "alice", "alice@example.com");
        var bob = await JoinAsync(harness, "bob", "bob@example.com");
        var web = await JoinAsync(harness, "web", null, "tag:web");
        var aliceDelta = await alice.Map.NextDeltaAsync();
        aliceDelta.PeersChanged.Single().Id.Should().Be(web.Id);

        await bob.Client.UpdateEndpointsAsync("192.0.2.1:1");
        var fullOfWeb = await web.Client.Map().NextAsync();
        fullOfWeb.Full.Peers.Select(peer => peer.Id).Should().Equal(alice.Id);
        fullOfWeb.Full.FilterEnforced.Should().BeTrue();
        fullOfWeb.Full.PolicyVersion.Should().Be(1);
        fullOfWeb.Full.Filter.Single().Rules.Single().Sources.Should().HaveCount(2);
        fullOfWeb.Full.Self.User.Should().BeEmpty("tagged nodes have no user on the wire");
        var aliceNodes = await harness.Admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, harness.AdminHeaders());
        aliceNodes.Nodes.Single(node => node.Id == alice.Id).User.Should().Be("alice@example.com");
    }

    [Fact]
    public async Task ThePolicyCanForbidTheNetmapCacheForATagAndTheNodesConcernedHearOfItAlone()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        await harness.Server.SetPolicyAsync("acme", Policy);
        var alice = await JoinAsync(harness, "alice", "alice@example.com");
        var web = await JoinAsync(harness, "web", null, "tag:web");
        (await alice.Map.NextDeltaAsync()).PeersChanged.Single().Id.Should().Be(web.Id);

        var forbidding = Policy.Replace("\"tests\":", "\"netmapCache\": { \"forbid\": [\"tag:web\"] },\n  \"tests\":", StringComparison.Ordinal);
        (await harness.Server.SetPolicyAsync("acme", forbidding)).Should().Be(2);
        var webDelta = await NextPolicyDeltaAsync(web.Map);
        webDelta.HasNetmapCacheForbidden.Should().BeTrue();
        webDelta.NetmapCacheForbidden.Should().BeTrue();
        var aliceDelta = await NextPolicyDeltaAsync(alice.Map);
        aliceDelta.Should().Be(new MapDelta { PolicyVersion = 2 }, "alice may still cache her netmap");
        (await web.Client.Map().NextAsync()).Full.NetmapCacheForbidden.Should().BeTrue("a new stream's full map says so too");

        (await harness.Server.SetPolicyAsync("acme", Policy.Replace("\"tests\":", "\"netmapCache\": { \"forbid\": [\"*\"] },\n  \"tests\":", StringComparison.Ordinal))).Should().Be(3);
        (await NextPolicyDeltaAsync(alice.Map)).NetmapCacheForbidden.Should().BeTrue("* forbids the whole tailnet");

        var unknownKey = await Errors.ExpectAsync(() => harness.Admin.SetPolicyAsync(new SetPolicyRequest
        {
            Tailnet = "acme",
            Policy = "{\n  \"netmapCache\": { \"allow\": [\"*\"] },\n}",
        }, harness.AdminHeaders()).ResponseAsync, StatusCode.InvalidArgument, ControlErrors.InvalidPolicy);
        unknownKey.Status.Detail.Should().StartWith("line 2, column ").And.Contain("\"allow\"");
    }

    [Fact]
    [Trait("Category", "Security")]
    public async Task ANodeAskingForATagItDoesNotOwnIsRefused()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        await harness.Server.SetPolicyAsync("acme", Policy);
        var bobKey = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, user: "bob@example.com");
        await Errors.ExpectAsync(() => harness.NewNode().RegisterAsync(bobKey, "bob", tags: "tag:web"), StatusCode.PermissionDenied,
            ControlErrors.TagsNotPermitted, "tag:web");
        var aliceKey = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, user: "alice@example.com");
        var granted = await harness.NewNode().RegisterAsync(aliceKey, "alice-web", tags: "tag:web");
        granted.Self.Tags.Should().Equal("tag:web");
        var undeclared = await harness.Server.CreateAuthKeyAsync("acme", tags: ["tag:other"]);
        await Errors.ExpectAsync(() => harness.NewNode().RegisterAsync(undeclared, "x"), StatusCode.PermissionDenied,
            ControlErrors.TagsNotPermitted, "tag:other");
        await Errors.ExpectAsync(() => harness.Admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", User = "no user" },
            harness.AdminHeaders()).ResponseAsync, StatusCode.InvalidArgument);
    }

    [Fact]
    public async Task ThePolicySurvivesARestart()
    {
        using var directory = new TempDirectory();
        ulong aliceId;
        await using (var harness = await CoordinationHarness.StartAsync(dataDirectory: directory.Path))
        {
            await harness.Server.CreateTailnetAsync("acme");
            await harness.Server.SetPolicyAsync("acme", Policy);
            aliceId = (await JoinAsync(harness, "alice", "alice@example.com")).Id;
            await JoinAsync(harness, "bob", "bob@example.com");
        }
        await using (var harness = await CoordinationHarness.StartAsync(dataDirectory: directory.Path))
        {
            var alice = harness.NewNode();
            var key = await harness.Server.CreateAuthKeyAsync("acme", user: "alice@example.com");
            var (client, _) = await harness.JoinAsync(key, "alice2");
            var full = (await client.Map().NextAsync()).Full;
            full.FilterEnforced.Should().BeTrue();
            full.PolicyVersion.Should().Be(1);
            full.Peers.Should().BeEmpty("alice may reach only tag:web, and there is none");
            (await harness.Admin.GetPolicyAsync(new GetPolicyRequest { Tailnet = "acme" }, harness.AdminHeaders())).Policy.Should().Be(Policy);
        }
        aliceId.Should().BePositive();
    }
}
