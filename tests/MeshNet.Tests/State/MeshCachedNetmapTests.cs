using MeshNet.Control.V1;
using MeshNet.Netmap;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.State;

/// <summary>The netmap cache's envelope: a faithful round trip, and every kind of bad blob refused with its reason.</summary>
[Trait("Category", "Unit")]
public sealed class MeshCachedNetmapTests : IDisposable
{
    private static readonly DateTimeOffset Received = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
    private readonly MeshNodeIdentity _identity = MeshNodeIdentity.Generate();

    public void Dispose() => _identity.Dispose();

    private static NetmapSnapshot Snapshot()
    {
        var full = Full(Node(1), Node(2, tags: "tag:web"), Node(3));
        full.Domain = "acme.meshnet.internal";
        full.FilterEnforced = true;
        full.PolicyVersion = 7;
        var chunk = new FilterChunk { Name = "acl-1" };
        chunk.Rules.Add(new FilterRule { Sources = { "100.64.0.2/32" }, Destinations = { new PortRange { Prefix = "*", FirstPort = 22, LastPort = 22 } } });
        full.Filter.Add(chunk);
        return NetmapApplier.ApplyFull(full, "session-1", 42);
    }

    [Fact]
    public void ARoundTripRestoresPeersNamesRulesAndPosition()
    {
        var cached = MeshCachedNetmap.From(Snapshot(), "acme", Received);
        var restored = MeshCachedNetmap.Deserialize(cached.Serialize(_identity), _identity);

        restored.NodeId.Should().Be(1);
        restored.Tailnet.Should().Be("acme");
        restored.PeerCount.Should().Be(2);
        restored.Sequence.Should().Be(42);
        restored.PolicyVersion.Should().Be(7);
        restored.ReceivedAt.Should().Be(Received);
        var snapshot = restored.ToSnapshot();
        var original = Snapshot();
        snapshot.Session.Should().Be("session-1");
        snapshot.Domain.Should().Be(original.Domain);
        snapshot.FilterEnforced.Should().BeTrue();
        snapshot.Filter.Keys.Should().Equal("acl-1");
        snapshot.Peers.Values.Should().BeEquivalentTo(original.Peers.Values);
        snapshot.Self.Should().BeEquivalentTo(original.Self);
    }

    [Fact]
    public void EveryBadBlobIsRefusedWithItsReason()
    {
        var bytes = MeshCachedNetmap.From(Snapshot(), "acme", Received).Serialize(_identity);

        Reason(bytes[..3]).Should().Contain("truncated");
        Reason(bytes[..(bytes.Length - 1)]).Should().Contain("truncated");
        Reason([.. bytes, 0]).Should().Contain("trailing");
        Reason("{\"format\":\"json\"}"u8.ToArray()).Should().Contain("not a MeshNet netmap cache");

        var version = (byte[])bytes.Clone();
        version[4] = 9;
        Reason(version).Should().Contain("format version 9");

        var flipped = (byte[])bytes.Clone();
        flipped[60] ^= 0x01; // inside the content
        Reason(flipped).Should().Contain("integrity");

        using var other = MeshNodeIdentity.Generate();
        var foreign = MeshCachedNetmap.From(Snapshot(), "acme", Received).Serialize(other);
        Reason(foreign).Should().Contain("another node key");
    }

    private string Reason(byte[] data)
    {
        var act = () => MeshCachedNetmap.Deserialize(data, _identity);
        return act.Should().Throw<InvalidDataException>().Which.Message;
    }

    [Fact]
    public async Task TheInMemoryStoreKeepsOnlyWhatBelongsToItsNode()
    {
        var store = new InMemoryNetmapStore();
        (await store.LoadAsync(_identity)).Should().BeNull();
        await store.SaveAsync(_identity, MeshCachedNetmap.From(Snapshot(), "acme", Received));
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(42);
        using var other = MeshNodeIdentity.Generate();
        (await store.LoadAsync(other)).Should().BeNull("the cache was written for another key");
        await store.DeleteAsync();
        store.HasNetmap.Should().BeFalse();
    }
}
