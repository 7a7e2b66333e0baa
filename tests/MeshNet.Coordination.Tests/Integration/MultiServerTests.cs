using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;

namespace MeshNet.Coordination.Tests.Integration;

/// <summary>
/// Several servers sharing one database, in this process: every tailnet is served by the holder
/// of its lease, any server sends nodes there and forwards admin writes, a planned move hands a
/// tailnet over with its nodes resuming on the target without a full netmap, a drain empties a
/// server, and a server that stops gives its tailnets to the others.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MultiServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task AServerThatDoesNotServeATailnetRedirectsNodesAndForwardsAdminWrites()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        await cluster.Servers[0].CreateTailnetAsync("acme");
        var (owner, other) = await OwnerAsync(cluster, "acme");
        var key = await cluster.Servers[owner].CreateAuthKeyAsync("acme", reusable: true);
        var first = cluster.NewNode(owner);
        await first.RegisterAsync(key, "first");

        var second = cluster.NewNode(other);
        var redirect = await Errors.ExpectAsync(() => second.RegisterAsync(key, "second"), StatusCode.Unavailable, ControlErrors.NotOwner);
        redirect.Trailers.GetValue(ControlErrors.RedirectTrailer).Should().Be(cluster.Servers[owner].Url);
        redirect.Trailers.GetValue(ControlErrors.EpochTrailer).Should().NotBeNullOrEmpty();
        using (var map = cluster.At(first, other).Map())
        {
            (await map.FailureAsync()).Trailers.GetValue(ControlErrors.TrailerKey).Should().Be(ControlErrors.NotOwner);
        }
        await Errors.ExpectAsync(() => cluster.Servers[other].CreateAuthKeyAsync("acme"), CoordinationErrorCode.NotOwner);

        // The owner serves what the redirect named.
        await cluster.At(second, owner).RegisterAsync(key, "second");
        // An admin write at the other server is forwarded to the owner, applied once even when retried with its key.
        var headers = ClusterHarness.AdminHeaders("policy-1");
        var saved = await cluster.Admin(other).SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = "{}" }, headers);
        var again = await cluster.Admin(other).SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = "{}" }, headers);
        again.Version.Should().Be(saved.Version);
        (await cluster.Admin(other).GetPolicyAsync(new GetPolicyRequest { Tailnet = "acme" }, ClusterHarness.AdminHeaders())).Version.Should().Be(saved.Version);
        var keyAgain = await cluster.Admin(other).CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme" }, ClusterHarness.AdminHeaders("key-1"));
        var keyRetry = await cluster.Admin(owner).CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme" }, ClusterHarness.AdminHeaders("key-1"));
        keyRetry.Secret.Should().Be(keyAgain.Secret, "a retried creation returns the same key (derived from its idempotency key)");
        (await cluster.Admin(owner).ListAuthKeysAsync(new ListAuthKeysRequest { Tailnet = "acme" }, ClusterHarness.AdminHeaders())).Keys.Should().HaveCount(2);
    }

    [Fact]
    public async Task AMoveHandsTheTailnetOverAndItsNodesResumeOnTheTargetWithoutAFullNetmap()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        await cluster.Servers[0].CreateTailnetAsync("acme");
        var (owner, other) = await OwnerAsync(cluster, "acme");
        var key = await cluster.Servers[owner].CreateAuthKeyAsync("acme", reusable: true);
        var nodes = new List<(NodeClient Client, MapStreamReader Map)>();
        for (int i = 0; i < 5; i++)
        {
            var node = cluster.NewNode(owner);
            await node.RegisterAsync(key, $"n{i}");
            var map = node.Map("", 0, $"192.0.2.{i + 1}:41641");
            await map.NextAsync();
            nodes.Add((node, map));
        }
        // Every node has heard every other come online.
        foreach (var (_, map) in nodes)
        {
            while (map.LastRevision < 10)
            {
                await map.NextAsync();
            }
        }
        long fullMaps = cluster.Servers[other].Counters.FullMapsSent;

        // Asked at the server that does not serve it: forwarded to the owner, the source of the move.
        var moved = await cluster.Admin(other).MoveTailnetAsync(new MoveTailnetRequest { Tailnet = "acme", TargetServer = $"s{other + 1}" },
            ClusterHarness.AdminHeaders(), deadline: DateTime.UtcNow + Timeout);
        (moved.FromServer, moved.ToServer, moved.StreamsRedirected).Should().Be(($"s{owner + 1}", $"s{other + 1}", 5u),
            $"the source's counters: {cluster.Servers[owner].Counters}");

        foreach (var (client, map) in nodes)
        {
            var ended = await map.FailureAsync();
            ended.Trailers.GetValue(ControlErrors.TrailerKey).Should().Be(ControlErrors.NotOwner);
            ended.Trailers.GetValue(ControlErrors.RedirectTrailer).Should().Be(cluster.Servers[other].Url);
            using var resumed = cluster.At(client, other).Map(map.Session, map.LastSequence, map.LastRevision);
            var first = await resumed.NextAsync();
            first.BodyCase.Should().NotBe(MapResponse.BodyOneofCase.Full, "the change log covers the resume");
            first.Sequence.Should().Be(map.LastSequence + 1, "the sequence continues on the target");
            first.Session.Should().Be(map.Session);
            first.Epoch.Should().Be(moved.Epoch);
            first.Epoch.Should().BeGreaterThan(map.Epoch);
        }
        cluster.Servers[other].Counters.FullMapsSent.Should().Be(fullMaps);
        cluster.Servers[other].Counters.CatchUpsSent.Should().BeGreaterThanOrEqualTo(5);

        var incident = await WaitForIncidentAsync(cluster, "planned-move", closed: true);
        var part = incident.Tailnets.Single();
        (part.Tailnet, part.Server, part.NodesAffected, part.NodesResumed).Should().Be(("acme", $"s{other + 1}", 5u, 5u));
        // The gaps include this test resuming the nodes one after the other: the severity follows
        // the measured worst gap (over 1 s: S1, over 250 ms: S2), never a node left behind.
        var maxGap = part.MaxGap.ToTimeSpan();
        part.Severity.Should().Be(maxGap > TimeSpan.FromSeconds(1) ? "S1" : maxGap > TimeSpan.FromMilliseconds(250) ? "S2" : "S3", $"the worst gap was {maxGap}");
        incident.TimeToMitigate.Should().NotBeNull();
    }

    [Fact]
    public async Task WritesDuringAMoveAreAppliedOnceAtWhicheverServerServesTheTailnet()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        await cluster.Servers[0].CreateTailnetAsync("acme");
        var (owner, other) = await OwnerAsync(cluster, "acme");
        var saves = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            await Task.Yield();
            var response = await cluster.Admin(i % 2).SetPolicyAsync(new SetPolicyRequest { Tailnet = "acme", Policy = $"{{ /* {i} */ }}" },
                ClusterHarness.AdminHeaders($"save-{i}"), deadline: DateTime.UtcNow + Timeout);
            return response.Version;
        })).ToList();
        var move = cluster.Admin(owner).MoveTailnetAsync(new MoveTailnetRequest { Tailnet = "acme", TargetServer = $"s{other + 1}" },
            ClusterHarness.AdminHeaders(), deadline: DateTime.UtcNow + Timeout).ResponseAsync;
        var versions = await Task.WhenAll(saves);
        await move;

        versions.Should().OnlyHaveUniqueItems("every acknowledged save is its own version");
        var policy = await cluster.Admin(other).GetPolicyAsync(new GetPolicyRequest { Tailnet = "acme" }, ClusterHarness.AdminHeaders());
        policy.Version.Should().Be(20, "twenty saves, none lost, none applied twice");
    }

    [Fact]
    public async Task ADrainMovesEveryTailnetAwayAndTheDrainedServerTakesNoneBack()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        foreach (var name in new[] { "a", "b", "c" })
        {
            await cluster.Servers[0].CreateTailnetAsync(name);
            if ((await OwnerAsync(cluster, name)).Owner != 0)
            {
                // Either server may claim a free lease: put every tailnet on s1, the one drained.
                await cluster.Admin(1).MoveTailnetAsync(new MoveTailnetRequest { Tailnet = name, TargetServer = "s1" }, ClusterHarness.AdminHeaders(),
                    deadline: DateTime.UtcNow + Timeout);
            }
        }
        var drained = await cluster.Admin(1).DrainServerAsync(new DrainServerRequest { Server = "s1" }, ClusterHarness.AdminHeaders(),
            deadline: DateTime.UtcNow + Timeout);
        drained.Failed.Should().BeEmpty();
        drained.Moved.Select(move => move.Tailnet).Should().BeEquivalentTo(["a", "b", "c"], "s1 served all three");
        drained.Moved.Should().OnlyContain(move => move.FromServer == "s1" && move.ToServer == "s2");
        var leases = await cluster.Admin(0).ListLeasesAsync(new ListLeasesRequest(), ClusterHarness.AdminHeaders());
        leases.Leases.Select(lease => lease.Owner).Should().OnlyContain(owner => owner == "s2");
        var servers = await cluster.Admin(0).ListServersAsync(new ListServersRequest(), ClusterHarness.AdminHeaders());
        servers.Servers.Single(server => server.Id == "s1").Draining.Should().BeTrue();
        await Errors.ExpectAsync(() => cluster.Servers[0].CreateAuthKeyAsync("a"), CoordinationErrorCode.NotOwner);

        await cluster.Admin(1).DrainServerAsync(new DrainServerRequest { Server = "s1", Undrain = true }, ClusterHarness.AdminHeaders());
        (await cluster.Admin(0).ListServersAsync(new ListServersRequest(), ClusterHarness.AdminHeaders())).Servers.Single(server => server.Id == "s1")
            .Draining.Should().BeFalse();
    }

    [Fact]
    public async Task AServerThatStopsGivesItsTailnetsUpAndItsNodesResumeOnAnother()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        await cluster.Servers[0].CreateTailnetAsync("acme");
        var (owner, other) = await OwnerAsync(cluster, "acme");
        var key = await cluster.Servers[owner].CreateAuthKeyAsync("acme", reusable: true);
        var node = cluster.NewNode(owner);
        await node.RegisterAsync(key, "n");
        using var map = node.Map();
        await map.NextAsync();

        await cluster.Servers[owner].DisposeAsync(); // releases its leases
        (await map.FailureAsync()).StatusCode.Should().Be(StatusCode.Unavailable);
        MapResponse first = null!;
        await Eventually.Async(async () =>
        {
            using var resumed = cluster.At(node, other).Map(map.Session, map.LastSequence, map.LastRevision);
            first = await resumed.NextAsync();
        }, Timeout);
        first.BodyCase.Should().NotBe(MapResponse.BodyOneofCase.Full);
        first.Sequence.Should().Be(map.LastSequence + 1);
        var incident = await WaitForIncidentAsync(cluster, "release", closed: true, server: other);
        incident.Tailnets.Single().NodesResumed.Should().Be(1);
    }

    /// <summary>The index of the server that serves the tailnet (claiming it now if nobody does), and of another one.</summary>
    private static async Task<(int Owner, int Other)> OwnerAsync(ClusterHarness cluster, string tailnet)
    {
        int owner = -1;
        await Eventually.Async(async () =>
        {
            var leases = await cluster.Admin(0).ListLeasesAsync(new ListLeasesRequest(), ClusterHarness.AdminHeaders());
            var lease = leases.Leases.Single(item => item.Tailnet == tailnet);
            lease.Owner.Should().NotBeEmpty("a standby claims a free lease");
            owner = cluster.IndexOf(lease.OwnerUrl);
        }, Timeout);
        return (owner, owner == 0 ? 1 : 0);
    }

    private static async Task<Incident> WaitForIncidentAsync(ClusterHarness cluster, string cause, bool closed, int server = 0)
    {
        Incident? found = null;
        await Eventually.Async(async () =>
        {
            var incidents = await cluster.Admin(server).ListIncidentsAsync(new ListIncidentsRequest(), ClusterHarness.AdminHeaders());
            // An incident's parts are saved after the incident itself: a closed one has parts, all closed.
            found = incidents.Incidents.FirstOrDefault(incident => incident.Cause == cause
                && (!closed || (incident.Tailnets.Count > 0 && incident.Tailnets.All(part => part.Closed))));
            found.Should().NotBeNull();
        }, Timeout);
        return found!;
    }
}
