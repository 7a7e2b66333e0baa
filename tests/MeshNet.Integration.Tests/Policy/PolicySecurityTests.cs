using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using MeshNet.Integration.Tests.Infrastructure;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.WireGuard;
using static MeshNet.Integration.Tests.Policy.PolicyTailnet;

namespace MeshNet.Integration.Tests.Policy;

/// <summary>
/// What an attacker inside the tailnet can do against the policy: a peer the policy keeps out of
/// a port writes hand-made IP packets straight into its WireGuard device (so they arrive
/// authenticated as its own), and a node asks for tags it does not own.
/// </summary>
[Trait("Category", "Security")]
public sealed class PolicySecurityTests : IAsyncLifetime
{
    private const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Ack = 0x10;

    private PolicyTailnet _net = null!;

    public async Task InitializeAsync() => _net = await PolicyTailnet.StartAsync();

    public async Task DisposeAsync() => await _net.DisposeAsync();

    [Fact]
    public async Task APeerOutsideThePolicyCannotConnectOrSendUdpToAProtectedPortEvenWithCraftedPackets()
    {
        var web = await _net.StartTaggedNodeAsync("web", "tag:web");
        var alice = await _net.StartUserNodeAsync("alice", Alice);
        var bob = await _net.StartUserNodeAsync("bob", Bob);
        await using var ssh = await web.ListenAsync(22);
        await using var dns = await web.ListenUdpAsync(5353);
        await _net.SaveAsync([web, alice, bob], """
            { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:22"] },
            { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:5353"], "proto": "udp" },
            """);
        var accepting = ssh.AcceptAsync().AsTask();

        // The honest way in fails at once.
        (await TryConnectAsync(bob, web, 22)).Should().Be(MeshErrorCode.PolicyDenied);

        // Hand-made packets from bob's own addresses: a SYN, segments that pretend to belong to a
        // connection (ACK, SYN-ACK, FIN, RST, data), a UDP "reply" from port 53, the same UDP
        // datagram in two IPv4 fragments, and a SYN over IPv6.
        var bob4 = V4(bob);
        var web4 = V4(web);
        var bob6 = bob.Addresses.First(a => a.AddressFamily == AddressFamily.InterNetworkV6);
        var web6 = web.Addresses.First(a => a.AddressFamily == AddressFamily.InterNetworkV6);
        var payload = Encoding.ASCII.GetBytes("let me in");
        var bigPayload = new byte[600];
        List<byte[]> crafted =
        [
            IpPacketBuilder.Tcp(bob4, web4, 40001, 22, 1000, 0, Syn),
            IpPacketBuilder.Tcp(bob4, web4, 40002, 22, 1000, 5000, Ack, payload),
            IpPacketBuilder.Tcp(bob4, web4, 40003, 22, 1000, 5000, Syn | Ack),
            IpPacketBuilder.Tcp(bob4, web4, 40004, 22, 1000, 5000, Fin | Ack),
            IpPacketBuilder.Tcp(bob4, web4, 40005, 22, 1000, 5000, Rst),
            IpPacketBuilder.Udp(bob4, web4, 53, 5353, payload),
            .. IpPacketBuilder.FragmentV4(IpPacketBuilder.Udp(bob4, web4, 40006, 5353, bigPayload), 304, identification: 0x4242),
            IpPacketBuilder.Tcp(bob6, web6, 40007, 22, 1000, 0, Syn),
        ];
        const int FilteredDatagrams = 8; // the two fragments are judged once, reassembled
        long deniedBefore = web.GetStatus().PacketsDeniedByPolicy;
        foreach (var packet in crafted)
        {
            bob.Device.WritePacket(packet);
        }
        await TestTailnet.WaitUntilAsync(() => web.GetStatus().PacketsDeniedByPolicy >= deniedBefore + FilteredDatagrams,
            "web's filter to deny every crafted datagram");

        // A packet with alice's source address out of bob's tunnel never reaches web's filter:
        // WireGuard's cryptokey routing drops it.
        long spoofedBefore = web.Device.Counters[WireGuardDropReason.DisallowedSourceAddress];
        bob.Device.WritePacket(IpPacketBuilder.Tcp(V4(alice), web4, 40008, 22, 1000, 0, Syn));
        await TestTailnet.WaitUntilAsync(() => web.Device.Counters[WireGuardDropReason.DisallowedSourceAddress] > spoofedBefore,
            "web to drop the spoofed packet");

        // The first connection and the first datagram web's applications see are alice's.
        await using (var fromAlice = await alice.DialAsync("web", 22).AsTask().WaitAsync(TestTailnet.Timeout))
        {
            await using var accepted = await accepting.WaitAsync(TestTailnet.Timeout);
            accepted.Peer.Name.Should().Be("alice");
        }
        await using var socket = await alice.ListenUdpAsync(0);
        await socket.SendToAsync(Encoding.ASCII.GetBytes("alice"), new IPEndPoint(web4, 5353));
        var buffer = new byte[1024];
        var received = await dns.ReceiveFromAsync(buffer).AsTask().WaitAsync(TestTailnet.Timeout);
        Encoding.ASCII.GetString(buffer, 0, received.ReceivedBytes).Should().Be("alice");
        ((IPEndPoint)received.RemoteEndPoint).Address.Should().Be(V4(alice));
        web.GetStatus().PolicyDenials[MeshPolicyDenialReason.NoRule].Should().BeGreaterThanOrEqualTo(FilteredDatagrams);
    }

    [Fact]
    public async Task ANodeCannotClaimATagItsUserDoesNotOwn()
    {
        await _net.Tailnet.Server.SetPolicyAsync("acme", """
            {
              "groups": { "group:ops": ["alice@example.com"] },
              "tagOwners": { "tag:prod": ["group:ops"], "tag:web": ["admin@example.com"] },
              "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ],
            }
            """);
        var bobKey = await _net.Tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, user: Bob);
        var options = _net.Tailnet.Options("bob", bobKey);
        options.Tags = ["tag:prod"];
        var refused = await FluentActions.Awaiting(() => MeshNode.StartAsync(options)).Should().ThrowAsync<MeshException>();
        refused.Which.ErrorCode.Should().Be(MeshErrorCode.TagsNotPermitted);
        refused.Which.Message.Should().Contain("tag:prod");

        // A tag nobody declared is refused too, while alice (in group:ops) gets tag:prod.
        var aliceKey = await _net.Tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, user: Alice);
        var undeclared = _net.Tailnet.Options("alice-x", aliceKey);
        undeclared.Tags = ["tag:nobody"];
        (await FluentActions.Awaiting(() => MeshNode.StartAsync(undeclared)).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.TagsNotPermitted);
        var owned = _net.Tailnet.Options("alice", aliceKey);
        owned.Tags = ["tag:prod"];
        var alice = await _net.Tailnet.StartNodeAsync(owned);
        alice.GetStatus().Self.Tags.Should().Equal("tag:prod");

        // Bob cannot get the tag by re-registering his existing node either.
        var store = new InMemoryStateStore();
        var bobPlain = await _net.Tailnet.StartNodeAsync(_net.Tailnet.Options("bob-plain", bobKey, store));
        bobPlain.GetStatus().Self.Tags.Should().BeEmpty();
        await bobPlain.DisposeAsync();
        var again = _net.Tailnet.Options("bob-plain", bobKey, store);
        again.Tags = ["tag:prod"];
        (await FluentActions.Awaiting(() => MeshNode.StartAsync(again)).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.TagsNotPermitted);
    }
}
