using System.Net;
using Google.Protobuf;
using MeshNet.Control.V1;
using MeshNet.DataPlane;
using MeshNet.Netmap;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.DataPlane;

/// <summary>The netmap → WireGuard diff: which peers get SetPeer or RemovePeer for each kind of change.</summary>
[Trait("Category", "Unit")]
public sealed class PeerConfiguratorTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _time = new(Start);
    private readonly RecordingPeerTarget _device = new();
    private readonly PeerConfigurator _configurator;
    private NetmapSnapshot _map;
    private ulong _sequence = 1;

    public PeerConfiguratorTests()
    {
        _configurator = new PeerConfigurator(_device, _time, _ => true, NullLogger.Instance);
        _map = Map(Node(1), Node(2), Node(3), Node(4));
        _configurator.Apply(_map);
    }

    public void Dispose() => _configurator.Dispose();

    private void ApplyDelta(MapDelta delta)
    {
        _device.Clear();
        _map = NetmapApplier.ApplyDelta(_map, delta, ++_sequence, out _);
        _configurator.Apply(_map);
    }

    [Fact]
    public void FullMapConfiguresEveryPeerWithItsAddressesAndFirstEndpoint()
    {
        _device.Operations.Should().Equal("set k2", "set k3", "set k4");
        var config = _device.Peers[Key(2)];
        config.Endpoint.Should().Be(IPEndPoint.Parse("192.0.2.2:41641"));
        config.AllowedIps.Should().Equal(IPNetwork.Parse("100.64.0.2/32"), IPNetwork.Parse("fd7a:115c:a1e0::2/128"));
        config.PersistentKeepalive.Should().BeNull();
    }

    [Fact]
    public void OnlineAndLastSeenPatchesTouchNothing()
    {
        ApplyDelta(new MapDelta
        {
            Patches =
            {
                new PeerPatch { Id = 2, Online = false },
                new PeerPatch { Id = 3, LastSeen = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Start) },
            },
        });
        _device.Operations.Should().BeEmpty();
    }

    [Fact]
    public void AnEndpointChangeRestartsOnlyThatPeersSession()
    {
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Endpoints = new Endpoints { Values = { "198.51.100.3:9999" } } } } });
        _device.Operations.Should().Equal(["remove k3", "set k3"], "a new endpoint (a restarted peer) gets a new handshake at once");
        _device.Peers[Key(3)].Endpoint.Should().Be(IPEndPoint.Parse("198.51.100.3:9999"));
    }

    [Fact]
    public void ARecordWithoutEndpointsKeepsTheSessionAndEndpointInUse()
    {
        // A restarted service lists nodes without endpoints until they report again.
        var bare = Node(3);
        bare.Endpoints.Clear();
        ApplyDelta(new MapDelta { PeersChanged = { bare } });
        _device.Operations.Should().BeEmpty("an unknown endpoint is not a moved peer");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Endpoints = new Endpoints { Values = { "192.0.2.3:41641" } } } } });
        _device.Operations.Should().BeEmpty("the endpoint reported again is the one in use");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Endpoints = new Endpoints { Values = { "198.51.100.3:9999" } } } } });
        _device.Operations.Should().Equal("remove k3", "set k3");
    }

    [Fact]
    public void ANewRunIdStartsAHandshakeWithThatPeerEvenWithTheSameEndpoint()
    {
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Instance = "run-a" } } });
        _device.Operations.Should().Equal(["set k3"], "the first run id seen is only recorded");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Online = false }, new PeerPatch { Id = 3, Online = true } } });
        _device.Operations.Should().BeEmpty("a reconnect of the same run changes nothing");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Instance = "run-b" } } });
        _device.Operations.Should().Equal(["set k3", "handshake k3"],
            "a restarted peer may have lost its session: a new handshake, without dropping a session it may already have renewed");
        _device.Peers[Key(3)].Endpoint.Should().Be(IPEndPoint.Parse("192.0.2.3:41641"));
    }

    [Fact]
    public void ARunIdTheNetmapNoLongerKnowsIsKeptSoTheNextRestartIsStillSeen()
    {
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Instance = "run-a" } } });
        _device.Clear();

        // A coordination service that restarted lists every node without a run id until it attaches again.
        _map = Map(Node(1), Node(2), Node(3), Node(4));
        _configurator.Apply(_map);
        _device.Operations.Should().BeEmpty("an unknown run id is not a change");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Instance = "run-a" } } });
        _device.Operations.Should().BeEmpty("the same run attached again");

        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Instance = "run-b" } } });
        _device.Operations.Should().Equal(["set k3", "handshake k3"], "compared with run-a, not with the empty value in between");
    }

    [Fact]
    public void AChangeBehindTheFirstEndpointTouchesNothing()
    {
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 3, Endpoints = new Endpoints { Values = { "192.0.2.3:41641", "198.51.100.3:1" } } } } });
        _device.Operations.Should().BeEmpty("only the first endpoint is configured");
    }

    [Fact]
    public void AnUnchangedWholeRecordTouchesNothingAndAnAddressChangeResetsThePeer()
    {
        ApplyDelta(new MapDelta { PeersChanged = { Node(2, "renamed", tags: ["tag:new"]) } });
        _device.Operations.Should().BeEmpty("name and tags are not WireGuard configuration");

        var moved = Node(4);
        moved.Addresses.Clear();
        moved.Addresses.Add("100.64.0.44");
        ApplyDelta(new MapDelta { PeersChanged = { moved } });
        _device.Operations.Should().Equal("set k4");
        _device.Peers[Key(4)].AllowedIps.Should().Equal(IPNetwork.Parse("100.64.0.44/32"));
    }

    [Fact]
    public void AddedAndRemovedPeers()
    {
        ApplyDelta(new MapDelta { PeersChanged = { Node(5) }, PeersRemoved = { 3 } });
        _device.Operations.Should().Equal("remove k3", "set k5");
        _device.Peers.Keys.Should().BeEquivalentTo([Key(2), Key(4), Key(5)]);
    }

    [Fact]
    public void AKeyRotationReplacesThePeer()
    {
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 2, NodeKey = ByteString.CopyFrom(Key(202).AsSpan()) } } });
        _device.Operations.Should().Equal("remove k2", "set k202");
        _device.Peers[Key(202)].AllowedIps.Should().Contain(IPNetwork.Parse("100.64.0.2/32"));
    }

    [Fact]
    public void ExpiredPeersAreNotConfiguredAndAreRemovedWhenTheirKeyExpires()
    {
        ApplyDelta(new MapDelta
        {
            PeersChanged =
            {
                Node(5, keyExpiry: Start.AddMinutes(-1)),
                Node(6, keyExpiry: Start.AddMinutes(10)),
                Node(7, keyExpiry: Start.AddMinutes(20)),
            },
        });
        _device.Operations.Should().Equal(["set k6", "set k7"], "an expired key is never configured");

        _device.Clear();
        _time.Advance(TimeSpan.FromMinutes(9));
        _device.Operations.Should().BeEmpty();
        _time.Advance(TimeSpan.FromMinutes(1));
        _device.Operations.Should().Equal("remove k6");
        _time.Advance(TimeSpan.FromMinutes(10));
        _device.Operations.Should().Equal("remove k6", "remove k7");
    }

    [Fact]
    public void AnExpiryPushedBackByAPatchKeepsThePeer()
    {
        ApplyDelta(new MapDelta { PeersChanged = { Node(6, keyExpiry: Start.AddMinutes(10)) } });
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 6, KeyExpiry = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Start.AddDays(90)) } } });
        _device.Operations.Should().BeEmpty();
        _time.Advance(TimeSpan.FromHours(1));
        _device.Operations.Should().BeEmpty();
    }

    [Fact]
    public void PeersWithoutKeysAddressesOrWithOurKeyAreSkipped()
    {
        var noKey = Node(5);
        noKey.NodeKey = ByteString.Empty;
        var noAddresses = Node(6);
        noAddresses.Addresses.Clear();
        var ourKey = Node(7, key: Key(1));
        var duplicateKey = Node(8, key: Key(2));
        ApplyDelta(new MapDelta { PeersChanged = { noKey, noAddresses, ourKey, duplicateKey } });
        _device.Operations.Should().BeEmpty();
    }

    [Fact]
    public void APeerTheDeviceRejectsDoesNotKeepTheOthersOut()
    {
        _device.Reject = config => config.PublicKey.Equals(Key(5));
        ApplyDelta(new MapDelta { PeersChanged = { Node(5), Node(6) } });
        _device.Operations.Should().Equal("set k6");
        _configurator.Applied.Keys.Should().NotContain(Key(5));

        // Retried on the next netmap.
        _device.Reject = null;
        ApplyDelta(new MapDelta { Patches = { new PeerPatch { Id = 2, Online = false } } });
        _device.Operations.Should().Equal("set k5");
    }

    [Fact]
    public void EndpointsOfAFamilyTheSocketCannotReachAreSkipped()
    {
        var target = new RecordingPeerTarget();
        using var v4Only = new PeerConfigurator(target, _time, e => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork, NullLogger.Instance);
        var peer = Node(2);
        peer.Endpoints.Clear();
        peer.Endpoints.Add("[2001:db8::2]:41641");
        peer.Endpoints.Add("192.0.2.2:41641");
        var v6Only = Node(3);
        v6Only.Endpoints.Clear();
        v6Only.Endpoints.Add("[2001:db8::3]:41641");
        v4Only.Apply(Map(Node(1), peer, v6Only));
        target.Peers[Key(2)].Endpoint.Should().Be(IPEndPoint.Parse("192.0.2.2:41641"));
        target.Peers[Key(3)].Endpoint.Should().BeNull("no usable endpoint: the peer may still reach us");
    }

    [Fact]
    public void ANewFullMapIsDiffedAgainstWhatIsApplied()
    {
        _device.Clear();
        _map = Map(Node(1), Node(2), Node(4, key: Key(44)), Node(9));
        _configurator.Apply(_map);
        _device.Operations.Should().Equal("remove k3", "remove k4", "set k44", "set k9");
    }

    [Fact]
    public void DiffIsPure()
    {
        var a = PeerPlanner.Desired(Map(Node(1), Node(2), Node(3)), Start, _ => true, out _);
        var b = PeerPlanner.Desired(Map(Node(1), Node(3), Node(4)), Start, _ => true, out _);
        var plan = PeerPlanner.Diff(a, b);
        plan.Remove.Should().Equal(Key(2));
        plan.Set.Select(p => p.NodeId).Should().Equal(4UL);
        PeerPlanner.Diff(b, b).IsEmpty.Should().BeTrue();
    }
}
