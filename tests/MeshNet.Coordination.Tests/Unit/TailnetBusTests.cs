using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Tests.Infrastructure;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class TailnetBusTests
{
    [Fact]
    public void FirstMessageIsTheFullNetmapWithSelfPeersSortedByIdDomainAndSession()
    {
        var fixture = new BusFixture(nodes: 0);
        foreach (ulong id in new ulong[] { 7, 3, 11, 1 })
        {
            fixture.Upsert(id);
        }
        var stream = fixture.Attach(3, endpoints: "192.0.2.1:41641");
        var messages = BusFixture.Drain(stream);

        messages.Should().ContainSingle();
        var first = messages[0];
        first.Sequence.Should().Be(1);
        first.Session.Should().NotBeEmpty();
        first.BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        first.Full.Self.Id.Should().Be(3);
        first.Full.Self.Online.Should().BeTrue();
        first.Full.Self.Endpoints.Should().Equal("192.0.2.1:41641");
        first.Full.Peers.Select(peer => peer.Id).Should().Equal(1, 7, 11);
        first.Full.Domain.Should().Be("t.meshnet.internal");
        first.Full.Filter.Should().BeEmpty("no filter chunks means allow all");
        fixture.Counters.FullMapsSent.Should().Be(1);
    }

    [Fact]
    public void ANewRunIdReachesThePeersAsAPatchAndTheSameOneAgainDoesNot()
    {
        var fixture = new BusFixture(nodes: 2);
        var first = fixture.Attach(1);
        BusFixture.Drain(first);
        var second = fixture.Attach(2, instance: "run-a");
        BusFixture.Drain(second).Single().Full.Self.Instance.Should().Be("run-a");
        BusFixture.Drain(first).Single().Delta.Patches.Single().Instance.Should().Be("run-a");

        // The same run reconnects (a control hiccup): online again, no new run id.
        fixture.Detach(second);
        BusFixture.Drain(first).Single().Delta.Patches.Single().Online.Should().BeFalse();
        var again = fixture.Attach(2, instance: "run-a");
        BusFixture.Drain(again);
        var patch = BusFixture.Drain(first).Single().Delta.Patches.Single();
        patch.Online.Should().BeTrue();
        patch.Instance.Should().BeEmpty("the run did not change");

        // A restart: a new run id.
        fixture.Detach(again);
        BusFixture.Drain(first);
        var restarted = fixture.Attach(2, instance: "run-b");
        BusFixture.Drain(restarted);
        BusFixture.Drain(first).Single().Delta.Patches.Single().Instance.Should().Be("run-b");

        // A re-registration (new hostname or tags) rewrites the record: the run id is kept, or
        // the peers would compare the next one against "" and miss a restart.
        fixture.Upsert(2);
        BusFixture.Drain(first).Single().Delta.PeersChanged.Single().Instance.Should().Be("run-b");
        fixture.Detach(restarted);
        BusFixture.Drain(first);
        BusFixture.Drain(fixture.Attach(2, instance: "run-c"));
        BusFixture.Drain(first).Single().Delta.Patches.Single().Instance.Should().Be("run-c");
    }

    [Fact]
    public void JoinEndpointsOnlineOfflineRotationAndLeaveReachEveryOtherConnectedNodeOnce()
    {
        var fixture = new BusFixture(nodes: 4);
        var streams = fixture.AttachAll(3); // node 4 is registered but offline

        // Join.
        fixture.Upsert(5);
        AssertOneDeltaEach(streams, except: null, delta => delta.PeersChanged.Should().ContainSingle(node => node.Id == 5));

        // Online (with endpoints) when node 4 connects: the others get a patch, node 4 its full map.
        var fourth = fixture.Attach(4, endpoints: "198.51.100.4:41641");
        BusFixture.Drain(fourth).Single().BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        AssertOneDeltaEach(streams, except: null, delta =>
        {
            var patch = delta.Patches.Single();
            patch.Id.Should().Be(4);
            patch.HasOnline.Should().BeTrue();
            patch.Online.Should().BeTrue();
            patch.Endpoints.Values.Should().Equal("198.51.100.4:41641");
        });
        streams.Add(fourth);

        // Endpoint change of node 2: everyone but node 2.
        fixture.UpdateEndpoints(2, "203.0.113.2:1234").Should().BeTrue();
        fixture.UpdateEndpoints(2, "203.0.113.2:1234").Should().BeFalse("the same endpoints are no change");
        AssertOneDeltaEach(streams, except: 2, delta => delta.Patches.Single().Endpoints.Values.Should().Equal("203.0.113.2:1234"));
        BusFixture.Drain(streams[1]).Should().BeEmpty();

        // Rotation of node 1: peers get the new key, node 1 its own record.
        var newKey = new byte[32];
        newKey[0] = 9;
        fixture.Bus.RotateKey(1, newKey, fixture.Now.AddDays(10), fixture.NextRevision());
        AssertOneDeltaEach(streams, except: 1, delta =>
        {
            delta.Patches.Single().NodeKey.ToByteArray().Should().Equal(newKey);
            delta.Patches.Single().KeyExpiry.Should().NotBeNull();
        });
        BusFixture.Drain(streams[0]).Single().Delta.SelfChanged.NodeKey.ToByteArray().Should().Equal(newKey);

        // Offline: node 3's stream ends.
        fixture.Clock.Advance(TimeSpan.FromSeconds(5));
        fixture.Detach(streams[2]).Should().BeTrue();
        var remaining = new List<Infrastructure.MapStreamRef> { new(streams[0], 1), new(streams[1], 2), new(streams[3], 4) };
        foreach (var item in remaining)
        {
            var patch = BusFixture.Drain(item.Stream).Single().Delta.Patches.Single();
            patch.Id.Should().Be(3);
            patch.Online.Should().BeFalse();
            patch.LastSeen.ToDateTimeOffset().Should().Be(fixture.Now);
        }

        // Leave: node 5 removed.
        fixture.Bus.Remove(5, fixture.NextRevision(), Validation.Failures.NotRegistered("removed")).Should().BeTrue();
        foreach (var item in remaining)
        {
            BusFixture.Drain(item.Stream).Single().Delta.PeersRemoved.Should().Equal(5UL);
        }
    }

    [Theory]
    [InlineData(10)]
    [InlineData(100)]
    [InlineData(1000)]
    public void OneChangeCostsExactlyOneMessagePerOtherConnectedNode(int size)
    {
        var fixture = new BusFixture(nodes: size, queue: 2 * size);
        var streams = fixture.AttachAll(size);
        long before = fixture.Counters.MapMessagesQueued;

        fixture.UpdateEndpoints(1, "192.0.2.1:1");

        (fixture.Counters.MapMessagesQueued - before).Should().Be(size - 1);
        BusFixture.Drain(streams[0]).Should().BeEmpty();
        foreach (var stream in streams.Skip(1))
        {
            BusFixture.Drain(stream).Should().ContainSingle().Which.Delta.Patches.Single().Id.Should().Be(1);
        }
    }

    [Fact]
    public void TheDeltaOfAChangeIsBuiltOnceAndShared()
    {
        var fixture = new BusFixture(nodes: 3);
        var streams = fixture.AttachAll(3);
        fixture.UpdateEndpoints(1, "192.0.2.1:1");
        var second = BusFixture.Drain(streams[1]).Single();
        var third = BusFixture.Drain(streams[2]).Single();
        second.Delta.Should().BeSameAs(third.Delta);
        second.Should().NotBeSameAs(third, "each session wraps it with its own sequence");
    }

    [Fact]
    public void ResumeReplaysOnlyTheMissedDeltasWithoutAFullNetmap()
    {
        var fixture = new BusFixture(nodes: 3);
        var streams = fixture.AttachAll(3);
        fixture.UpdateEndpoints(2, "192.0.2.2:1");
        // Node 1 saw nodes 2 and 3 come online (2, 3), then the endpoints (4).
        var applied = BusFixture.Drain(streams[0]).Last();
        applied.Sequence.Should().Be(4);

        // Node 1 disconnects; changes happen while it is away.
        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.UpdateEndpoints(2, "192.0.2.2:2");
        fixture.UpdateEndpoints(3, "192.0.2.3:3");
        var handle = SessionOf(fixture, 1);

        var resumed = fixture.Attach(1, handle, applied.Sequence);
        fixture.LastKind.Should().Be(AttachKind.Replayed);
        var replay = BusFixture.Drain(resumed);
        replay.Select(message => message.Sequence).Should().Equal(5UL, 6UL);
        replay.Should().OnlyContain(message => message.BodyCase == MapResponse.BodyOneofCase.Delta);
        replay[0].Session.Should().Be(handle, "the first message of every stream carries the session");
        replay[0].Delta.Patches.Single().Endpoints.Values.Should().Equal("192.0.2.2:2");
        replay[1].Delta.Patches.Single().Id.Should().Be(3);
        fixture.Counters.StreamsResumed.Should().Be(1);

        // Nothing missed: a keep-alive confirms the session, still no full netmap.
        fixture.Bus.Detach(resumed, fixture.Now);
        var again = fixture.Attach(1, handle, 6);
        fixture.LastKind.Should().Be(AttachKind.Replayed);
        var confirm = BusFixture.Drain(again).Single();
        confirm.BodyCase.Should().Be(MapResponse.BodyOneofCase.KeepAlive);
        confirm.Session.Should().Be(handle);
        confirm.Sequence.Should().Be(7);
    }

    [Fact]
    public void ResumeFromBeyondTheReplayBufferAndTheLogGetsAFullNetmapWithIncreasingSequence()
    {
        var fixture = new BusFixture(nodes: 2, replay: 4);
        var streams = fixture.AttachAll(2);
        var handle = SessionOf(fixture, 1);
        fixture.Bus.Detach(streams[0], fixture.Now);
        for (int i = 1; i <= 6; i++)
        {
            fixture.UpdateEndpoints(2, $"192.0.2.2:{i}");
        }

        // No revision given (an old client): the change log cannot tell what it missed.
        var stream = fixture.Attach(1, handle, 1);
        fixture.LastKind.Should().Be(AttachKind.Full);
        var full = BusFixture.Drain(stream).Single();
        full.BodyCase.Should().Be(MapResponse.BodyOneofCase.Full);
        // 1 full netmap, 2 node 2 online, 3..8 the changes while away: the session's sequence continues.
        full.Sequence.Should().Be(9);
        full.Full.Peers.Single().Endpoints.Should().Equal("192.0.2.2:6");
    }

    [Fact]
    public void ANewStreamGetsANewSessionAndAResumePointAheadOfTheSessionIsInvalid()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        var handle = SessionOf(fixture, 1);

        var fresh = fixture.Attach(1, "not-a-session", 0);
        fixture.LastKind.Should().Be(AttachKind.Full);
        var full = BusFixture.Drain(fresh).Single();
        full.Full.Should().NotBeNull();
        full.Sequence.Should().Be(1);
        full.Session.Should().NotBe(handle);

        var act = () => fixture.Attach(1, full.Session, 99);
        act.Should().Throw<CoordinationException>().Which.ErrorCode.Should().Be(CoordinationErrorCode.InvalidRequest);
        streams.Should().HaveCount(2);
    }

    [Fact]
    public void ASecondStreamReplacesTheFirstWithoutFlappingOnlineState()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        var second = fixture.Attach(1);
        BusFixture.Drain(second).Single().Full.Should().NotBeNull();

        streams[0].Failure!.ErrorCode.Should().Be(CoordinationErrorCode.Conflict);
        streams[0].Terminated.IsCancellationRequested.Should().BeTrue();
        fixture.Detach(streams[0]).Should().BeFalse("the replaced stream no longer speaks for the node");
        BusFixture.Drain(streams[1]).Should().BeEmpty("node 1 never went offline");
        fixture.Bus.IsOnline(1).Should().BeTrue();
    }

    [Fact]
    public void ASlowClientIsDisconnectedInsteadOfBufferedAndCanResume()
    {
        var fixture = new BusFixture(nodes: 2, replay: 16, queue: 4);
        var streams = fixture.AttachAll(2);
        var handle = SessionOf(fixture, 1);
        for (int i = 1; i <= 30; i++)
        {
            fixture.UpdateEndpoints(2, $"192.0.2.2:{i}");
        }
        streams[0].Failure!.ErrorCode.Should().Be(CoordinationErrorCode.Unavailable);
        fixture.Counters.SlowStreamsDropped.Should().Be(1);

        // The client read some before it fell behind; it resumes from there or gets a full map.
        fixture.Bus.Detach(streams[0], fixture.Now);
        var stream = fixture.Attach(1, handle, 25);
        fixture.LastKind.Should().Be(AttachKind.Replayed);
        // Sequences: 1 full netmap, 2 node 2 online, 3..32 the endpoint changes.
        BusFixture.Drain(stream).Select(message => message.Sequence).Should().Equal(26UL, 27UL, 28UL, 29UL, 30UL, 31UL, 32UL);
    }

    [Fact]
    public void KeepAlivesComeEveryIntervalWithJitterOnTheClock()
    {
        var fixture = new BusFixture(nodes: 1, random: new Random(1234), queue: 1000);
        var stream = fixture.Attach(1);
        BusFixture.Drain(stream);
        var arrivals = new List<TimeSpan>();
        var start = fixture.Now;
        for (int second = 1; second <= 600; second++)
        {
            fixture.Clock.Advance(TimeSpan.FromSeconds(1));
            foreach (var message in BusFixture.Drain(stream))
            {
                message.BodyCase.Should().Be(MapResponse.BodyOneofCase.KeepAlive);
                arrivals.Add(fixture.Now - start);
            }
        }
        var gaps = arrivals.Zip(arrivals.Skip(1), (a, b) => b - a).Prepend(arrivals[0]).ToList();
        arrivals.Count.Should().BeInRange(10, 13, "600 s at 45-55 s");
        gaps.Should().OnlyContain(gap => gap >= TimeSpan.FromSeconds(45) && gap <= TimeSpan.FromSeconds(56));
        gaps.Distinct().Count().Should().BeGreaterThan(1, "the interval is jittered");
        fixture.Counters.KeepAlivesQueued.Should().Be(arrivals.Count);

        fixture.Detach(stream);
        fixture.Clock.Advance(TimeSpan.FromMinutes(5));
        BusFixture.Drain(stream).Should().BeEmpty("a closed stream gets no keep-alives");
    }

    [Fact]
    public void KeyExpiryEndsTheNodesStreamAndPatchesPeers()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        fixture.Bus.SetKeyExpiry(1, fixture.Now, fixture.Now);

        streams[0].Failure!.ErrorCode.Should().Be(CoordinationErrorCode.NodeKeyExpired);
        BusFixture.Drain(streams[1]).Single().Delta.Patches.Single().KeyExpiry.ToDateTimeOffset().Should().Be(fixture.Now);

        var act = () => fixture.Attach(1);
        act.Should().Throw<CoordinationException>().Which.ErrorCode.Should().Be(CoordinationErrorCode.NodeKeyExpired);
    }

    [Fact]
    public void DisconnectedSessionsAreForgottenAfterTheRetentionTime()
    {
        var fixture = new BusFixture(nodes: 2, retention: TimeSpan.FromMinutes(2));
        var streams = fixture.AttachAll(2);
        var handle = SessionOf(fixture, 1);
        fixture.Bus.Detach(streams[0], fixture.Now);
        fixture.Clock.Advance(TimeSpan.FromMinutes(1));
        fixture.Bus.PruneSessions(fixture.Now).Should().Be(0);
        fixture.Clock.Advance(TimeSpan.FromMinutes(1));
        fixture.Bus.PruneSessions(fixture.Now).Should().Be(1);

        fixture.Attach(1, handle, 1);
        fixture.LastKind.Should().Be(AttachKind.Full, "the session is gone and no revision was given");
    }

    [Fact]
    public void RemovedNodesStreamEndsAndClosedBusRefusesStreams()
    {
        var fixture = new BusFixture(nodes: 2);
        var streams = fixture.AttachAll(2);
        fixture.Bus.Remove(1, fixture.NextRevision(), Validation.Failures.NotRegistered("removed"));
        streams[0].Failure!.ErrorCode.Should().Be(CoordinationErrorCode.NodeNotRegistered);

        fixture.Bus.Close(Validation.Failures.Unavailable("stopping")).Should().Be(1);
        streams[1].Failure!.ErrorCode.Should().Be(CoordinationErrorCode.Unavailable);
        var act = () => fixture.Attach(2);
        act.Should().Throw<CoordinationException>().Which.ErrorCode.Should().Be(CoordinationErrorCode.Unavailable);
    }

    private static string SessionOf(BusFixture fixture, ulong nodeId) => fixture.Handles[nodeId];

    private static void AssertOneDeltaEach(IEnumerable<Bus.MapStream> streams, ulong? except, Action<MapDelta> check)
    {
        foreach (var stream in streams)
        {
            if (stream.NodeId == except)
            {
                continue;
            }
            var messages = BusFixture.Drain(stream);
            var message = messages.Should().ContainSingle().Subject;
            message.BodyCase.Should().Be(MapResponse.BodyOneofCase.Delta);
            check(message.Delta);
        }
    }
}
