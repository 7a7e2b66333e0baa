using MeshNet.Control;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.Control;

/// <summary>The stream rules of <see cref="MapStreamLoop.Apply"/>: sessions, sequences, bodies.</summary>
[Trait("Category", "Unit")]
public sealed class MapStreamRulesTests : IDisposable
{
    private readonly List<NetmapSnapshot> _published = [];
    private readonly ControlClient _client = new(new Uri("http://127.0.0.1:7001"), null, null);
    private readonly MapStreamLoop _loop;

    public MapStreamRulesTests()
    {
        // Apply only tells the client the epochs it sees: these tests make no connection.
        _loop = new MapStreamLoop(_client, () => new MapRequest(), _published.Add, (_, _) => Task.FromResult(false),
            new ReconnectBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(8)), TimeSpan.FromMinutes(2), TimeProvider.System,
            NullLogger.Instance);
    }

    public void Dispose() => _client.Dispose();

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

    [Fact]
    public void AMessageOfAnEpochOlderThanOneSeenIsNeverApplied()
    {
        var full = FullMessage(1, "s1", Node(1), Node(2));
        full.Epoch = 4;
        full.Revision = 10;
        _loop.Apply(full, true);
        _loop.Epoch.Should().Be(4);

        // A server that lost the tailnet (epoch 3) sends on: refused, nothing applied.
        var stale = DeltaMessage(2, new MapDelta { PeersRemoved = { 2 } });
        stale.Epoch = 3;
        var act = () => _loop.Apply(stale, false);
        act.Should().Throw<Exception>().Which.Should().NotBeOfType<ControlProtocolException>("the session is kept: another server resumes it");
        _loop.StaleEpochMessages.Should().Be(1);
        _loop.Current!.Peers.Keys.Should().Equal(2UL);
        _loop.Current.Sequence.Should().Be(1);

        // The new owner (epoch 5) continues the same session.
        var resumed = DeltaMessage(2, new MapDelta { PeersRemoved = { 2 } }, session: "s1");
        resumed.Epoch = 5;
        resumed.Revision = 12;
        _loop.Apply(resumed, true);
        _loop.Current!.Peers.Should().BeEmpty();
        (_loop.Current.Epoch, _loop.Current.Revision, _loop.Epoch).Should().Be((5UL, 12UL, 5UL));
    }
}
