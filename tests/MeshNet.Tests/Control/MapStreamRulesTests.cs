using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.Control;

/// <summary>The stream rules of <see cref="MapStreamLoop.Apply"/>: sessions, sequences, bodies.</summary>
[Trait("Category", "Unit")]
public sealed class MapStreamRulesTests
{
    private readonly List<NetmapSnapshot> _published = [];
    private readonly MapStreamLoop _loop;

    public MapStreamRulesTests()
    {
        // Apply never touches the client: these tests need no connection.
        _loop = new MapStreamLoop(null!, () => new MapRequest(), _published.Add, (_, _) => Task.FromResult(false),
            new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8)), TimeSpan.FromMinutes(2), TimeProvider.System,
            NullLogger.Instance);
    }

    private static MapResponse KeepAlive(ulong sequence, string session = "") =>
        new() { Sequence = sequence, Session = session, KeepAlive = new KeepAlive() };

    [Fact]
    public void FirstFullMapPublishesAndCompletesStart()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1), Node(2)), firstOfStream: true);
        _published.Should().ContainSingle();
        _loop.Current!.Peers.Keys.Should().Equal(2UL);
        _loop.FirstNetmap.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public void DeltasAndKeepAlivesFollow()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1), Node(2)), true);
        _loop.Apply(KeepAlive(2), false);
        _loop.Apply(DeltaMessage(3, new MapDelta { PeersChanged = { Node(3) } }), false);
        _published.Should().HaveCount(2, "a keep-alive publishes nothing");
        _loop.Current!.Peers.Keys.Should().Equal(2UL, 3UL);
        _loop.Current.Sequence.Should().Be(3UL);
    }

    [Fact]
    public void OldOrRepeatedSequencesAreIgnored()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1), Node(2)), true);
        _loop.Apply(DeltaMessage(5, new MapDelta { PeersRemoved = { 2 } }), false);
        _loop.Apply(DeltaMessage(5, new MapDelta { PeersChanged = { Node(9) } }), false);
        _loop.Apply(DeltaMessage(4, new MapDelta { PeersChanged = { Node(8) } }), false);
        _loop.Current!.Peers.Should().BeEmpty();
        _published.Should().HaveCount(2);
    }

    [Fact]
    public void AResumedStreamContinuesTheSession()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1), Node(2)), true);
        _loop.Apply(DeltaMessage(2, new MapDelta { PeersChanged = { Node(3) } }), false);
        // Reconnected with (s1, 2): the service sends what was missed, starting with the session.
        _loop.Apply(DeltaMessage(3, new MapDelta { PeersRemoved = { 2 } }, session: "s1"), true);
        _loop.Current!.Peers.Keys.Should().Equal(3UL);
    }

    [Fact]
    public void ANewSessionMustStartWithAFullMap()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1), Node(2)), true);
        var act = () => _loop.Apply(DeltaMessage(7, new MapDelta { PeersRemoved = { 2 } }, session: "s2"), true);
        act.Should().Throw<ControlProtocolException>();

        // A new session with a full map replaces everything, sequence numbers start again.
        _loop.Apply(FullMessage(1, "s2", Node(1), Node(4)), true);
        _loop.Current!.Session.Should().Be("s2");
        _loop.Current.Peers.Keys.Should().Equal(4UL);
        _loop.Apply(DeltaMessage(2, new MapDelta { PeersChanged = { Node(5) } }), false);
        _loop.Current.Peers.Keys.Should().Equal(4UL, 5UL);
    }

    [Fact]
    public void ProtocolViolations()
    {
        var noSession = () => _loop.Apply(new MapResponse { Sequence = 1, Full = Full(Node(1)) }, true);
        noSession.Should().Throw<ControlProtocolException>().WithMessage("*session*");

        var deltaFirst = () => _loop.Apply(DeltaMessage(1, new MapDelta(), session: "s1"), true);
        deltaFirst.Should().Throw<ControlProtocolException>().WithMessage("*full map*");

        _loop.Apply(FullMessage(1, "s1", Node(1)), true);
        var switched = () => _loop.Apply(DeltaMessage(2, new MapDelta(), session: "other"), false);
        switched.Should().Throw<ControlProtocolException>().WithMessage("*session changed*");
    }

    [Fact]
    public void UnknownBodiesAreSkippedButAdvanceTheSequence()
    {
        _loop.Apply(FullMessage(1, "s1", Node(1)), true);
        _loop.Apply(new MapResponse { Sequence = 2 }, false);
        _loop.Apply(DeltaMessage(2, new MapDelta { PeersChanged = { Node(2) } }), false);
        _loop.Current!.Peers.Should().BeEmpty("sequence 2 was already seen");
    }
}
