using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;

namespace MeshNet.Coordination.Tests.Unit;

/// <summary>
/// Resuming a map stream on a bus that does not hold the session (another server, or after a
/// reload): the session is adopted, the sequence continues, and the node is caught up from the
/// revision it reports, or gets a full netmap when the change log does not cover it.
/// </summary>
[Trait("Category", "Unit")]
public sealed class TailnetBusResumeTests
{
    private const string WebAndDbPolicy = """
        {
          "tagOwners": { "tag:web": [], "tag:db": [], "tag:other": [] },
          "acls": [ { "action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"] } ],
        }
        """;

    [Fact]
    public void MessagesCarryTheBusEpochAndTheRevisionTheyReflect()
    {
        var fixture = new BusFixture(nodes: 2, epoch: 7);
        var first = fixture.Attach(1);
        var full = BusFixture.Drain(first).Single();
        full.Epoch.Should().Be(7);
        full.Revision.Should().Be(1, "node 1's own online state was the first committed change");

        fixture.Attach(2);
        var online = BusFixture.Drain(first).Single();
        online.Revision.Should().Be(2);
        online.Epoch.Should().Be(7);
        fixture.UpdateEndpoints(2, "192.0.2.2:1");
        BusFixture.Drain(first).Single().Revision.Should().Be(3);
        fixture.Bus.Revision.Should().Be(3);
    }

    [Fact]
    public void AnUnknownSessionIsAdoptedAndCaughtUpFromItsRevisionWithoutAFullNetmap()
    {
        var fixture = new BusFixture(nodes: 3);
        var streams = fixture.AttachAll(3);
        var last = fixture.Bus.Revision;
        // Node 1 applied everything so far: its last message is node 3 coming online.
        var handle = fixture.Handles[1];
        ulong lastSequence = 3;

        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.Clock.Advance(TimeSpan.FromMinutes(3));
        fixture.Bus.PruneSessions(fixture.Now).Should().Be(1, "the session is forgotten, as on a server that never had it");
        fixture.UpdateEndpoints(2, "192.0.2.2:7");
        fixture.Upsert(4);
        fixture.Bus.Remove(3, fixture.NextRevision(), Validation.Failures.NotRegistered("removed"));

        var resumed = fixture.Attach(1, handle, lastSequence, last);
        fixture.LastKind.Should().Be(AttachKind.CaughtUp);
        var message = BusFixture.Drain(resumed).Single();
        message.Sequence.Should().Be(lastSequence + 1, "the adopted session continues the node's sequence");
        message.Session.Should().Be(handle);
        message.BodyCase.Should().Be(MapResponse.BodyOneofCase.Delta);
        message.Delta.PeersChanged.Select(peer => peer.Id).Should().BeEquivalentTo([2UL, 4UL]);
        message.Delta.PeersChanged.Single(peer => peer.Id == 2).Endpoints.Should().Equal("192.0.2.2:7");
        message.Delta.PeersRemoved.Should().Equal(3UL);
        message.Revision.Should().Be(fixture.Bus.Revision);
        fixture.Counters.FullMapsSent.Should().Be(3, "only the three first connections got full netmaps");
        fixture.Counters.CatchUpsSent.Should().Be(1);
    }

    [Fact]
    public void ACatchUpWithNothingMissedIsAKeepAliveThatContinuesTheSequence()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        var handle = fixture.Handles[1];
        var revision = fixture.Bus.Revision;
        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.Clock.Advance(TimeSpan.FromMinutes(3));
        fixture.Bus.PruneSessions(fixture.Now);

        var resumed = fixture.Attach(1, handle, 2, revision);
        fixture.LastKind.Should().Be(AttachKind.CaughtUp);
        var message = BusFixture.Drain(resumed).Single();
        message.BodyCase.Should().Be(MapResponse.BodyOneofCase.KeepAlive);
        message.Sequence.Should().Be(3);
        message.Session.Should().Be(handle);

        fixture.UpdateEndpoints(2, "192.0.2.2:9");
        BusFixture.Drain(resumed).Single().Sequence.Should().Be(4, "later deltas follow on the adopted session");
    }

    [Fact]
    public void APolicySavedSinceTheRevisionGivesAFullNetmapOnTheSameSession()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        var handle = fixture.Handles[1];
        var revision = fixture.Bus.Revision;
        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.Clock.Advance(TimeSpan.FromMinutes(3));
        fixture.Bus.PruneSessions(fixture.Now);
        fixture.Bus.SetPolicy(PolicyParser.Parse(WebAndDbPolicy), 1, fixture.NextRevision());

        var resumed = fixture.Attach(1, handle, 2, revision);
        fixture.LastKind.Should().Be(AttachKind.Full, "the whole view may have changed");
        var full = BusFixture.Drain(resumed).Single();
        full.Sequence.Should().Be(3);
        full.Session.Should().Be(handle);
        full.Full.FilterEnforced.Should().BeTrue();
    }

    [Fact]
    public void APeerThatLeftTheNodesViewIsRemovedAndTheFilterSentWhole()
    {
        var fixture = new BusFixture(nodes: 0);
        fixture.Bus.SetPolicy(PolicyParser.Parse(WebAndDbPolicy), 1, fixture.NextRevision());
        fixture.Upsert(1, ["tag:db"]);
        fixture.Upsert(2, ["tag:web"]);
        fixture.Upsert(3, ["tag:web"]);
        var streams = fixture.AttachAll(3);
        var revision = fixture.Bus.Revision;
        var handle = fixture.Handles[1];
        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.Clock.Advance(TimeSpan.FromMinutes(3));
        fixture.Bus.PruneSessions(fixture.Now);

        fixture.Upsert(3, ["tag:other"]); // node 3 no longer reaches node 1 (tag:db), nor is reached by it

        var resumed = fixture.Attach(1, handle, 3, revision);
        fixture.LastKind.Should().Be(AttachKind.CaughtUp);
        var delta = BusFixture.Drain(resumed).Single().Delta;
        delta.PeersRemoved.Should().Equal(3UL);
        delta.PeersChanged.Should().BeEmpty();
        delta.FilterComplete.Should().BeTrue("a source of node 1's rule changed its tags");
        delta.FilterChunks.Should().ContainSingle().Which.Rules.Single().Sources.Should().HaveCount(2, "only node 2 (IPv4 and IPv6) is a source now");
    }

    [Fact]
    public void ARevisionBelowTheLogFloorOrAheadOfTheBusGetsAFullNetmap()
    {
        var fixture = new BusFixture(nodes: 0);
        var tailnet = new StoredTailnet("t", "t.meshnet.internal", CoordinationHarness.Epoch, TimeSpan.FromDays(1));
        var nodes = new[] { fixture.Stored(1) with { Revision = 40 }, fixture.Stored(2) with { Revision = 45 } };
        TailnetBus Load()
        {
            var bus = new TailnetBus("t", "t.meshnet.internal", 3, fixture.Settings, fixture.Clock, fixture.Counters);
            bus.Load(new StoredTailnetState(tailnet, nodes, null, [], Revision: 50, LogFloor: 30));
            return bus;
        }

        Load().Attach(1, fixture.KeyOf(1), "adopted", 10, 29, fixture.Now, out var below);
        below.Should().Be(AttachKind.Full, "revision 29 is below the log floor 30");
        Load().Attach(1, fixture.KeyOf(1), "adopted", 10, 51, fixture.Now, out var ahead);
        ahead.Should().Be(AttachKind.Full, "revision 51 is ahead of the bus");
        var covered = Load().Attach(1, fixture.KeyOf(1), "adopted", 10, 44, fixture.Now, out var kind);
        kind.Should().Be(AttachKind.CaughtUp);
        var message = BusFixture.Drain(covered).Single();
        message.Delta.PeersChanged.Single().Id.Should().Be(2);
        (message.Sequence, message.Session, message.Epoch, message.Revision).Should().Be((11UL, "adopted", 3UL, 50UL));
    }
}
