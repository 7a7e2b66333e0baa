using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.Coordination.Tests.Integration;

[Trait("Category", "Integration")]
public sealed class MapStreamTests
{
    [Fact]
    public async Task TheFullNetmapComesFirstThenDeltasForJoinEndpointsOnlineAndLeave()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        var (bob, bobSelf) = await harness.JoinAsync(key, "bob");

        using var aliceMap = alice.Map(endpoints: "192.0.2.10:41641");
        var full = await aliceMap.NextAsync();
        full.Sequence.Should().Be(1);
        full.Session.Should().NotBeEmpty();
        full.Full.Self.Id.Should().Be(aliceSelf.Self.Id);
        full.Full.Self.Online.Should().BeTrue();
        full.Full.Self.Endpoints.Should().Equal("192.0.2.10:41641");
        full.Full.Peers.Select(peer => peer.Name).Should().Equal("bob");
        full.Full.Peers[0].Online.Should().BeFalse();
        full.Full.Domain.Should().Be("acme.meshnet.internal");

        // Bob connects: Alice gets an online patch with his endpoints; Bob's full map shows Alice online.
        using var bobMap = bob.Map(endpoints: "198.51.100.20:41641");
        var bobFull = (await bobMap.NextAsync()).Full;
        bobFull.Peers.Single().Should().Match<Node>(peer => peer.Online && peer.Endpoints.Single() == "192.0.2.10:41641");
        var online = (await aliceMap.NextDeltaAsync()).Patches.Single();
        online.Id.Should().Be(bobSelf.Self.Id);
        online.Online.Should().BeTrue();
        online.Endpoints.Values.Should().Equal("198.51.100.20:41641");

        // Endpoint update on the unary call: the other side gets a patch, the streams are undisturbed.
        await bob.UpdateEndpointsAsync("198.51.100.20:41641", "[2001:db8::20]:41641");
        (await aliceMap.NextDeltaAsync()).Patches.Single().Endpoints.Values.Should().Equal("198.51.100.20:41641", "[2001:db8::20]:41641");

        // A new node joins.
        var (_, carol) = await harness.JoinAsync(key, "carol");
        (await aliceMap.NextDeltaAsync()).PeersChanged.Single().Id.Should().Be(carol.Self.Id);
        (await bobMap.NextDeltaAsync()).PeersChanged.Single().Name.Should().Be("carol");

        // Bob leaves (his stream ends): Alice sees him offline with a last-seen time.
        harness.Clock.Advance(TimeSpan.FromSeconds(3));
        bobMap.Call.Dispose();
        var offline = (await aliceMap.NextDeltaAsync()).Patches.Single();
        offline.Id.Should().Be(bobSelf.Self.Id);
        offline.Online.Should().BeFalse();
        offline.LastSeen.ToDateTimeOffset().Should().Be(harness.Clock.GetUtcNow());

        // Carol is deleted by an administrator.
        await harness.Admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "acme", Id = carol.Self.Id }, harness.AdminHeaders());
        (await aliceMap.NextDeltaAsync()).PeersRemoved.Should().Equal(carol.Self.Id);
    }

    [Fact]
    public async Task AReconnectingClientResumesWithOnlyWhatItMissed()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        var (bob, bobSelf) = await harness.JoinAsync(key, "bob");
        var aliceMap = alice.Map();
        await aliceMap.NextAsync();
        await bob.UpdateEndpointsAsync("192.0.2.1:1");
        await aliceMap.NextDeltaAsync();
        var (session, applied) = (aliceMap.Session, aliceMap.LastSequence);
        aliceMap.Dispose();
        await WaitUntilAsync(() => harness.Server.Counters.MapStreamsActive == 0);

        await bob.UpdateEndpointsAsync("192.0.2.1:2");
        await bob.UpdateEndpointsAsync("192.0.2.1:3");
        long fullMaps = harness.Server.Counters.FullMapsSent;

        using var resumed = alice.Map(session, applied);
        var first = await resumed.NextAsync();
        first.Session.Should().Be(session);
        first.Sequence.Should().Be(applied + 1);
        first.Delta.Patches.Single().Endpoints.Values.Should().Equal("192.0.2.1:2");
        (await resumed.NextAsync()).Delta.Patches.Single().Endpoints.Values.Should().Equal("192.0.2.1:3");
        harness.Server.Counters.FullMapsSent.Should().Be(fullMaps, "a resume sends no full netmap");
        harness.Server.Counters.StreamsResumed.Should().Be(1);

        // The resumed stream is live: new changes follow.
        await bob.UpdateEndpointsAsync("192.0.2.1:4");
        (await resumed.NextDeltaAsync()).Patches.Single().Id.Should().Be(bobSelf.Self.Id);
    }

    [Fact]
    public async Task AResumeAfterTheRetentionTimeIsCaughtUpFromTheChangeLogOrGetsAFullNetmapWithoutARevision()
    {
        await using var harness = await CoordinationHarness.StartAsync(options => options.MapSessionRetention = TimeSpan.FromMinutes(2));
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        var aliceMap = alice.Map();
        await aliceMap.NextAsync();
        var (session, applied, revision) = (aliceMap.Session, aliceMap.LastSequence, aliceMap.LastRevision);
        aliceMap.Dispose();
        await WaitUntilAsync(() => harness.Server.Counters.MapStreamsActive == 0);

        harness.Clock.Advance(TimeSpan.FromMinutes(3));
        await harness.RunMaintenanceAsync();
        var hub = harness.Server.Services.GetRequiredService<Bus.TailnetHub>();
        hub.TryGetLoaded("acme").Should().BeNull("a bus without sessions is unloaded");
        var (bob, bobSelf) = await harness.JoinAsync(key, "bob");
        long fullMaps = harness.Server.Counters.FullMapsSent;

        // The reloaded bus has no session: it adopts alice's and catches her up from her revision.
        using (var again = alice.Map(session, applied, revision))
        {
            var first = await again.NextAsync();
            first.BodyCase.Should().Be(MapResponse.BodyOneofCase.Delta);
            first.Session.Should().Be(session);
            first.Sequence.Should().Be(applied + 1, "the sequence continues");
            first.Delta.PeersChanged.Single().Id.Should().Be(bobSelf.Self.Id);
            harness.Server.Counters.FullMapsSent.Should().Be(fullMaps);
            applied = first.Sequence;
        }
        await WaitUntilAsync(() => harness.Server.Counters.MapStreamsActive == 0);

        // Without a revision (an older client) the same session continues with a full netmap.
        harness.Clock.Advance(TimeSpan.FromMinutes(3));
        await harness.RunMaintenanceAsync();
        using var plain = alice.Map(session, applied);
        var full = await plain.NextAsync();
        full.BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        full.Session.Should().Be(session);
        full.Sequence.Should().Be(applied + 1);
        _ = bob;
    }

    [Fact]
    public async Task KeepAlivesFlowOnTheClock()
    {
        await using var harness = await CoordinationHarness.StartAsync(options => options.KeepAliveInterval = TimeSpan.FromSeconds(50));
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        using var map = alice.Map();
        await map.NextAsync();
        harness.Clock.Advance(TimeSpan.FromSeconds(56));
        var keepAlive = await map.NextAsync();
        keepAlive.BodyCase.Should().Be(MapResponse.BodyOneofCase.KeepAlive);
        keepAlive.Sequence.Should().Be(2);
    }

    [Fact]
    public async Task ASecondStreamReplacesTheFirst()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        using var first = alice.Map();
        await first.NextAsync();
        using var second = alice.Map();
        (await second.NextAsync()).Full.Should().NotBeNull();
        (await first.FailureAsync()).StatusCode.Should().Be(StatusCode.Aborted);
    }

    [Fact]
    public async Task RotationKeepsIdentityAndPeersLearnTheNewKey()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        var (bob, _) = await harness.JoinAsync(key, "bob");
        using var bobMap = bob.Map();
        await bobMap.NextAsync();

        harness.Clock.Advance(TimeSpan.FromDays(1));
        using var newKey = TestNode.Create();
        var (rotated, response) = await alice.RotateAsync(newKey, harness.Channel, "alice");
        response.Self.Id.Should().Be(aliceSelf.Self.Id);
        response.Self.Addresses.Should().Equal(aliceSelf.Self.Addresses);
        response.Self.Name.Should().Be("alice");
        response.Self.NodeKey.ToByteArray().Should().Equal(newKey.PublicKey);
        response.Self.KeyExpiry.ToDateTimeOffset().Should().Be(harness.Clock.GetUtcNow().AddDays(180), "a rotation renews the key's lifetime");
        harness.Server.Counters.KeyRotations.Should().Be(1);

        var patch = (await bobMap.NextDeltaAsync()).Patches.Single();
        patch.Id.Should().Be(aliceSelf.Self.Id);
        patch.NodeKey.ToByteArray().Should().Equal(newKey.PublicKey);

        // The old key is gone; the new one maps.
        await Errors.ExpectAsync(() => alice.Map().NextAsync(), StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered);
        using var newMap = rotated.Map();
        (await newMap.NextAsync()).Full.Self.NodeKey.ToByteArray().Should().Equal(newKey.PublicKey);
        rotated.Dispose();
    }

    [Fact]
    public async Task ARotationWithoutProofOfTheOldKeyIsRefused()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        using var thief = TestNode.Create();
        using var other = TestNode.Create();
        var client = harness.NewNode(thief);
        var request = client.RegisterRequest(null, "alice");
        request.OldNodeKey = alice.Node.PublicKeyBytes;
        request.OldNodeKeyProof = other.RotationProof(harness.ServerKey, thief); // a proof by someone who does not hold alice's key
        await Errors.ExpectAsync(() => client.RegisterAsync(request), StatusCode.Unauthenticated, ControlErrors.BadProof, "old_node_key_proof");
    }

    [Fact]
    public async Task KeyExpiryEndsTheStreamShowsPeersAndOnlyAnAuthKeyBringsTheNodeBack()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "acme", NodeKeyLifetime = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromHours(1)) },
            harness.AdminHeaders());
        var key = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, lifetime: TimeSpan.FromDays(1));
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        harness.Clock.Advance(TimeSpan.FromMinutes(30));
        var (bob, _) = await harness.JoinAsync(key, "bob"); // expires 30 minutes after alice
        using var aliceMap = alice.Map();
        await aliceMap.NextAsync();
        using var bobMap = bob.Map();
        await bobMap.NextAsync();
        await aliceMap.NextDeltaAsync(); // bob online

        harness.Clock.Advance(TimeSpan.FromMinutes(31));
        await harness.RunMaintenanceAsync();

        var failure = await aliceMap.FailureAsync();
        failure.StatusCode.Should().Be(StatusCode.PermissionDenied);
        failure.Trailers.GetValue(ControlErrors.TrailerKey).Should().Be(ControlErrors.NodeKeyExpired);
        // Bob sees the expiry and then Alice going offline.
        var patches = new List<PeerPatch>();
        while (patches.Count < 2)
        {
            patches.AddRange((await bobMap.NextDeltaAsync()).Patches);
        }
        patches.Should().Contain(p => p.Id == aliceSelf.Self.Id && p.KeyExpiry != null && p.KeyExpiry.ToDateTimeOffset() <= harness.Clock.GetUtcNow());
        patches.Should().Contain(p => p.Id == aliceSelf.Self.Id && p.HasOnline && !p.Online);

        await Errors.ExpectAsync(() => alice.Map().NextAsync(), StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired);
        await Errors.ExpectAsync(() => alice.UpdateEndpointsAsync("192.0.2.1:1"), StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired);
        await Errors.ExpectAsync(() => alice.RegisterAsync(null, "alice"), StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired);
        await Errors.ExpectAsync(() => alice.RegisterAsync(key, "alice"), StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired);

        // The old key's proof alone no longer replaces it: an expiry forces re-authentication.
        using var fresh = TestNode.Create();
        await Errors.ExpectAsync(() => alice.RotateAsync(fresh, harness.Channel, "alice"), StatusCode.PermissionDenied, ControlErrors.NodeKeyExpired,
            "auth key");
        // Only a valid auth key of the node's tailnet does, and a refused one says why.
        await harness.Server.CreateTailnetAsync("other");
        var foreign = await harness.Server.CreateAuthKeyAsync("other", reusable: true);
        await Errors.ExpectAsync(() => alice.RotateAsync(fresh, harness.Channel, "alice", foreign), StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown);
        var revoked = await harness.Admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme" }, harness.AdminHeaders());
        await harness.Admin.RevokeAuthKeyAsync(new RevokeAuthKeyRequest { Id = revoked.Key.Id }, harness.AdminHeaders());
        await Errors.ExpectAsync(() => alice.RotateAsync(fresh, harness.Channel, "alice", revoked.Secret), StatusCode.PermissionDenied,
            ControlErrors.AuthKeyRevoked);
        harness.Server.Counters.KeyRotations.Should().Be(0);

        var oneOff = await harness.Admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme" }, harness.AdminHeaders());
        var (rotated, response) = await alice.RotateAsync(fresh, harness.Channel, "alice", oneOff.Secret);
        response.Self.Id.Should().Be(aliceSelf.Self.Id, "re-authentication keeps the node's identity");
        response.Self.Addresses.Should().Equal(aliceSelf.Self.Addresses);
        response.Self.KeyExpiry.ToDateTimeOffset().Should().Be(harness.Clock.GetUtcNow().AddHours(1));
        (await harness.Admin.ListAuthKeysAsync(new ListAuthKeysRequest { Tailnet = "acme" }, harness.AdminHeaders()))
            .Keys.Single(k => k.Id == oneOff.Key.Id).Uses.Should().Be(1, "the auth key's use is counted");
        using var back = rotated.Map();
        (await back.NextAsync()).Full.Self.Id.Should().Be(aliceSelf.Self.Id);
        rotated.Dispose();
    }

    [Fact]
    public async Task AStillValidKeyRotatesOnTheOldKeysProofAloneAndAnAuthKeyIsNotUsed()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        var oneOff = await harness.Server.CreateAuthKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(oneOff, "alice");
        harness.Clock.Advance(TimeSpan.FromDays(179)); // a day before the default 180-day lifetime ends

        using var first = TestNode.Create();
        var (rotated, response) = await alice.RotateAsync(first, harness.Channel, "alice");
        response.Self.Id.Should().Be(aliceSelf.Self.Id);
        response.Self.KeyExpiry.ToDateTimeOffset().Should().Be(harness.Clock.GetUtcNow().AddDays(180));

        // Sending the (used-up) auth key along does not matter for a valid key: it is not consulted.
        using var second = TestNode.Create();
        var (again, _) = await rotated.RotateAsync(second, harness.Channel, "alice", oneOff);
        harness.Server.Counters.KeyRotations.Should().Be(2);
        rotated.Dispose();
        again.Dispose();
    }

    [Fact]
    public async Task AnAdministratorCanExpireANodeKey()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, aliceSelf) = await harness.JoinAsync(key, "alice");
        using var map = alice.Map();
        await map.NextAsync();
        await harness.Admin.ExpireNodeKeyAsync(new ExpireNodeKeyRequest { Tailnet = "acme", Id = aliceSelf.Self.Id }, harness.AdminHeaders());
        (await map.FailureAsync()).Trailers.GetValue(ControlErrors.TrailerKey).Should().Be(ControlErrors.NodeKeyExpired);
        harness.Server.Counters.NodeKeysExpired.Should().Be(1);
    }

    [Fact]
    public async Task EphemeralNodesAreRemovedAfterBeingOfflineForTheTimeout()
    {
        await using var harness = await CoordinationHarness.StartAsync(options => options.EphemeralNodeTimeout = TimeSpan.FromMinutes(5));
        await harness.Server.CreateTailnetAsync("acme");
        var durable = await harness.Server.CreateAuthKeyAsync("acme", reusable: true);
        var ephemeral = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, ephemeral: true);
        var (watcher, _) = await harness.JoinAsync(durable, "watcher");
        var (runner, runnerSelf) = await harness.JoinAsync(ephemeral, "runner");
        var (idle, idleSelf) = await harness.JoinAsync(ephemeral, "idle");
        using var watch = watcher.Map();
        await watch.NextAsync();

        var runnerMap = runner.Map();
        await runnerMap.NextAsync();
        await watch.NextDeltaAsync(); // runner online

        // While connected, an ephemeral node stays however long it is online.
        harness.Clock.Advance(TimeSpan.FromMinutes(6));
        await harness.RunMaintenanceAsync();
        (await watch.NextDeltaAsync()).PeersRemoved.Should().Equal([idleSelf.Self.Id], "the idle one never connected");

        runnerMap.Dispose();
        (await watch.NextDeltaAsync()).Patches.Single().Online.Should().BeFalse();
        harness.Clock.Advance(TimeSpan.FromMinutes(4));
        await harness.RunMaintenanceAsync();
        harness.Server.Counters.EphemeralNodesRemoved.Should().Be(1);

        harness.Clock.Advance(TimeSpan.FromMinutes(2));
        await harness.RunMaintenanceAsync();
        (await watch.NextDeltaAsync()).PeersRemoved.Should().Equal(runnerSelf.Self.Id);
        harness.Server.Counters.EphemeralNodesRemoved.Should().Be(2);
        var nodes = await harness.Admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, harness.AdminHeaders());
        nodes.Nodes.Select(node => node.Name).Should().Equal("watcher");
        await Errors.ExpectAsync(() => runner.Map().NextAsync(), StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered);
    }

    [Fact]
    public async Task TheMaintenanceTimerRunsOnTheInjectedClock()
    {
        await using var harness = await CoordinationHarness.StartAsync(options =>
        {
            options.EphemeralNodeTimeout = TimeSpan.FromMinutes(1);
            options.MaintenanceInterval = TimeSpan.FromSeconds(10);
        });
        await harness.Server.CreateTailnetAsync("acme");
        var ephemeral = await harness.Server.CreateAuthKeyAsync("acme", ephemeral: true);
        await harness.JoinAsync(ephemeral, "runner");
        for (int i = 0; i < 8; i++)
        {
            harness.Clock.Advance(TimeSpan.FromSeconds(10));
        }
        await WaitUntilAsync(() => harness.Server.Counters.EphemeralNodesRemoved == 1);
    }

    [Fact]
    public async Task AClockThatJumpsMonthsAheadGivesOneMaintenancePassNotOnePerInterval()
    {
        // A periodic timer on a clock that jumps (a resumed machine, a test) would fire once per
        // interval skipped: 1.5 million passes for 179 days at the default 10 seconds.
        await using var harness = await CoordinationHarness.StartAsync();
        long before = harness.Server.Counters.MaintenancePasses;
        harness.Clock.Advance(TimeSpan.FromDays(179));
        await WaitUntilAsync(() => harness.Server.Counters.MaintenancePasses >= before + 1);
        await PassesStayAtAsync(harness, before + 1, "one jump, one pass");

        // The passes go on every interval after it: each 10 s step gives exactly one.
        for (long expected = before + 2; expected <= before + 3; expected++)
        {
            await StepUntilPassAsync(harness, expected);
            await PassesStayAtAsync(harness, expected, "one 10 s step, one pass");
        }
    }

    /// <summary>
    /// The pass count is <paramref name="expected"/> and still is a moment later (real time, the
    /// clock not moving): a pass still in flight, left over from the jump or the step, shows up.
    /// </summary>
    private static async Task PassesStayAtAsync(CoordinationHarness harness, long expected, string because)
    {
        harness.Server.Counters.MaintenancePasses.Should().Be(expected, because);
        await Task.Delay(100);
        harness.Server.Counters.MaintenancePasses.Should().Be(expected, because + ", and no other pass follows without the clock moving");
    }

    /// <summary>
    /// Steps the clock one maintenance interval (10 s) and waits for pass number <paramref name="expected"/>.
    /// A tick that comes while the previous pass is still finishing (counted, not yet marked done)
    /// is skipped by design and the timer re-armed, so a step that gives no pass within a second
    /// is repeated; before every step the count must still be the previous one.
    /// </summary>
    private static async Task StepUntilPassAsync(CoordinationHarness harness, long expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        do
        {
            harness.Server.Counters.MaintenancePasses.Should().Be(expected - 1, "no pass comes before the step");
            DateTime.UtcNow.Should().BeBefore(deadline, "the pass after a 10 s step should come soon");
            harness.Clock.Advance(TimeSpan.FromSeconds(10));
            var stepDeadline = DateTime.UtcNow.AddSeconds(1);
            while (harness.Server.Counters.MaintenancePasses < expected && DateTime.UtcNow < stepDeadline)
            {
                await Task.Delay(10);
            }
        }
        while (harness.Server.Counters.MaintenancePasses < expected);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should hold soon");
            await Task.Delay(10);
        }
    }
}
