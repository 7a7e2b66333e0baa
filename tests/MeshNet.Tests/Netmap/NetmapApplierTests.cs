using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Tests.Support;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.Netmap;

[Trait("Category", "Unit")]
public sealed class NetmapApplierTests
{
    [Fact]
    public void FullMapParsesSelfPeersDomainAndFilter()
    {
        var full = Full(Node(1, "self"), Node(2, "Web"), Node(3, "db", tags: ["tag:db"]));
        full.Domain = "Acme.MeshNet.Internal.";
        full.Filter.Add(new FilterChunk { Name = "base", Rules = { new FilterRule { Sources = { "*" } } } });
        full.Filter.Add(new FilterChunk { Name = "empty" });
        var map = NetmapApplier.ApplyFull(full, "session-a", 5);

        map.Session.Should().Be("session-a");
        map.Sequence.Should().Be(5UL);
        map.Domain.Should().Be("acme.meshnet.internal");
        map.Self.Name.Should().Be("self");
        map.Peers.Keys.Should().Equal(2UL, 3UL);
        var web = map.Peers[2];
        web.Name.Should().Be("web", "names are lower-cased");
        web.Key.Should().Be(Key(2));
        web.Addresses.Should().Equal(V4(2), V6(2));
        web.Endpoints.Should().Equal(IPEndPoint.Parse("192.0.2.2:41641"));
        map.Peers[3].Tags.Should().Equal("tag:db");
        map.Filter.Keys.Should().Equal("base");
        map.FqdnOf(web).Should().Be("web.acme.meshnet.internal");
    }

    [Fact]
    public void MalformedValuesAreDroppedNotFatal()
    {
        var bad = Node(2);
        bad.NodeKey = ByteString.CopyFrom(1, 2, 3);
        bad.Addresses.Add("not-an-ip");
        bad.Endpoints.Add("192.0.2.9");       // no port
        bad.Endpoints.Add("192.0.2.9:0");     // port 0
        bad.Endpoints.Add("[2001:db8::9]:51820");
        var zeroKey = Node(3);
        zeroKey.NodeKey = ByteString.CopyFrom(new byte[32]);
        var map = Map(Node(1), bad, zeroKey, Node(1, "self-again"));

        map.Peers[2].Key.Should().BeNull();
        map.Peers[2].Addresses.Should().Equal(V4(2), V6(2));
        map.Peers[2].Endpoints.Should().Equal(IPEndPoint.Parse("192.0.2.2:41641"), IPEndPoint.Parse("[2001:db8::9]:51820"));
        map.Peers[3].Key.Should().BeNull("an all-zero key is no key");
        map.Peers.Should().NotContainKey(1UL, "a peer record with our own id is ignored");
    }

    [Fact]
    public void FullMapWithoutSelfIsAProtocolError()
    {
        var act = () => NetmapApplier.ApplyFull(new FullMap(), "s", 1);
        act.Should().Throw<ControlProtocolException>();
    }

    [Fact]
    public void DeltaAppliesInFieldOrderOnACopy()
    {
        var before = Map(Node(1), Node(2), Node(3), Node(4));
        var delta = new MapDelta
        {
            PeersChanged = { Node(5, "new"), Node(2, "renamed") },
            PeersRemoved = { 3, 99 },
            // A patch for a peer removed in the same delta finds nothing: removal comes first.
            Patches = { new PeerPatch { Id = 3, Online = false }, new PeerPatch { Id = 4, Online = false } },
        };
        var after = NetmapApplier.ApplyDelta(before, delta, 2, out int ignored);

        after.Peers.Keys.Should().Equal(2UL, 4UL, 5UL);
        after.Peers[2].Name.Should().Be("renamed");
        after.Peers[4].Online.Should().BeFalse();
        after.Sequence.Should().Be(2UL);
        after.Session.Should().Be(before.Session);
        ignored.Should().Be(1);

        // The original snapshot is untouched.
        before.Peers.Keys.Should().Equal(2UL, 3UL, 4UL);
        before.Peers[4].Online.Should().BeTrue();
        before.Sequence.Should().Be(1UL);
    }

    [Fact]
    public void PatchesChangeOnlyTheFieldsPresent()
    {
        var before = Map(Node(1), Node(2));
        var peer = before.Peers[2];

        var onlineOnly = NetmapApplier.ApplyPatch(peer, new PeerPatch { Id = 2, Online = false });
        onlineOnly.Should().Be(peer with { Online = false });

        var noOnline = NetmapApplier.ApplyPatch(peer, new PeerPatch { Id = 2 });
        noOnline.Should().Be(peer, "an absent optional field changes nothing");

        var emptyEndpoints = NetmapApplier.ApplyPatch(peer, new PeerPatch { Id = 2, Endpoints = new Endpoints() });
        emptyEndpoints.Endpoints.Should().BeEmpty("an empty list (present) clears the endpoints");

        var moved = NetmapApplier.ApplyPatch(peer, new PeerPatch { Id = 2, Endpoints = new Endpoints { Values = { "198.51.100.7:1234", "garbage" } } });
        moved.Endpoints.Should().Equal(IPEndPoint.Parse("198.51.100.7:1234"));
        moved.Addresses.Should().Equal(peer.Addresses);

        var expiry = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var rotated = NetmapApplier.ApplyPatch(peer, new PeerPatch
        {
            Id = 2,
            NodeKey = ByteString.CopyFrom(Key(200).AsSpan()),
            KeyExpiry = Timestamp.FromDateTimeOffset(expiry),
            LastSeen = Timestamp.FromDateTimeOffset(expiry.AddDays(-1)),
        });
        rotated.Key.Should().Be(Key(200));
        rotated.KeyExpiry.Should().Be(expiry);
        rotated.LastSeen.Should().Be(expiry.AddDays(-1));
        rotated.Online.Should().Be(peer.Online);
    }

    [Fact]
    public void SelfChangeAndFilterChunks()
    {
        var full = Full(Node(1), Node(2));
        full.Filter.Add(new FilterChunk { Name = "a", Rules = { new FilterRule { Sources = { "*" } } } });
        full.Filter.Add(new FilterChunk { Name = "b", Rules = { new FilterRule { Sources = { "100.64.0.2/32" } } } });
        var before = NetmapApplier.ApplyFull(full, "s", 1);
        var delta = new MapDelta
        {
            SelfChanged = Node(1, "me", tags: ["tag:x"]),
            FilterChunks =
            {
                new FilterChunk { Name = "a" },
                new FilterChunk { Name = "c", Rules = { new FilterRule { Sources = { "*" } } } },
            },
        };
        var after = NetmapApplier.ApplyDelta(before, delta, 2, out _);
        after.Self.Name.Should().Be("me");
        after.Self.Tags.Should().Equal("tag:x");
        after.Filter.Keys.Should().Equal("b", "c");
        after.Peers.Keys.Should().Equal(2UL);
    }

    [Fact]
    public void FilterEnforcementAndPolicyVersionComeFromTheFullMapAndChangeOnlyWhenADeltaCarriesThem()
    {
        var full = Full(Node(1), Node(2));
        full.FilterEnforced = true;
        full.PolicyVersion = 7;
        var map = NetmapApplier.ApplyFull(full, "s", 1);
        map.FilterEnforced.Should().BeTrue();
        map.PolicyVersion.Should().Be(7);

        var unrelated = NetmapApplier.ApplyDelta(map, new MapDelta { PeersRemoved = { 2 } }, 2, out _);
        unrelated.FilterEnforced.Should().BeTrue();
        unrelated.PolicyVersion.Should().Be(7);
        unrelated.Filter.Should().BeSameAs(map.Filter, "an untouched filter keeps its collection (the node then skips recompiling)");

        var stopped = NetmapApplier.ApplyDelta(unrelated, new MapDelta { FilterEnforced = false, PolicyVersion = 0 }, 3, out _);
        stopped.FilterEnforced.Should().BeFalse();
        stopped.PolicyVersion.Should().Be(0);

        var versionOnly = NetmapApplier.ApplyDelta(stopped, new MapDelta { PolicyVersion = 9 }, 4, out _);
        versionOnly.FilterEnforced.Should().BeFalse();
        versionOnly.PolicyVersion.Should().Be(9);
    }

    [Fact]
    public void TheUserOfANodeIsKept()
    {
        var peer = Node(2);
        peer.User = "alice@example.com";
        var map = Map(Node(1), peer, Node(3, tags: ["tag:web"]));
        map.Peers[2].User.Should().Be("alice@example.com");
        map.Peers[3].User.Should().BeEmpty();
    }

    [Fact]
    public void LookupsByAddressAndName()
    {
        var map = Map(Node(1, "self"), Node(2, "web"), Node(3, "db"));
        map.FindByAddress(V4(2))!.Name.Should().Be("web");
        map.FindByAddress(V6(3))!.Name.Should().Be("db");
        map.FindByAddress(V4(1))!.Should().BeSameAs(map.Self);
        map.FindByAddress(IPAddress.Parse("::ffff:100.64.0.2"))!.Name.Should().Be("web");
        map.FindByAddress(IPAddress.Parse("100.64.0.99")).Should().BeNull();
        map.FindByName("WEB")!.Id.Should().Be(2UL);
        map.FindByName("self")!.Should().BeSameAs(map.Self);
        map.FindByName("nope").Should().BeNull();
    }

    [Fact]
    public void ACompleteFilterReplacesEveryChunkAndTheServerListFollowsTheService()
    {
        var full = Full(Node(1, "self"));
        full.Filter.Add(new FilterChunk { Name = "old", Rules = { new FilterRule { Sources = { "*" } } } });
        full.Filter.Add(new FilterChunk { Name = "kept", Rules = { new FilterRule { Sources = { "100.64.0.2/32" } } } });
        full.FilterEnforced = true;
        full.ControlUrls.Add(["https://c1.example", "https://c2.example"]);
        var map = NetmapApplier.ApplyFull(full, "s", 1, revision: 7, epoch: 2);
        (map.Revision, map.Epoch).Should().Be((7UL, 2UL));
        map.ControlUrls.Should().Equal("https://c1.example", "https://c2.example");

        var partial = NetmapApplier.ApplyDelta(map, new MapDelta { FilterChunks = { new FilterChunk { Name = "new", Rules = { new FilterRule() } } } },
            2, out _, revision: 8);
        partial.Filter.Keys.Should().Equal("kept", "new", "old");
        (partial.Revision, partial.Epoch).Should().Be((8UL, 2UL), "a delta without an epoch keeps the one known");
        partial.ControlUrls.Should().Equal(map.ControlUrls, "no server list in the delta: unchanged");

        var complete = NetmapApplier.ApplyDelta(partial, new MapDelta
        {
            FilterComplete = true,
            FilterChunks = { new FilterChunk { Name = "kept", Rules = { new FilterRule { Sources = { "100.64.0.3/32" } } } } },
            ControlUrls = new ControlUrls { Values = { "https://c3.example" } },
        }, 3, out _, revision: 9, epoch: 3);
        complete.Filter.Keys.Should().Equal("kept");
        complete.Filter["kept"].Rules.Single().Sources.Should().Equal("100.64.0.3/32");
        complete.ControlUrls.Should().Equal("https://c3.example");
        (complete.Revision, complete.Epoch).Should().Be((9UL, 3UL));

        var none = NetmapApplier.ApplyDelta(complete, new MapDelta { FilterComplete = true }, 4, out _);
        none.Filter.Should().BeEmpty("a complete filter with no chunks drops them all");
        NetmapApplier.ToFullMap(complete).ControlUrls.Should().Equal(["https://c3.example"], "the cache keeps the server list");
    }
}
