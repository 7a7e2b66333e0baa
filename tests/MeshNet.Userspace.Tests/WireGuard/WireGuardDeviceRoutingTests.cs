using System.Net;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>Cryptokey routing, roaming, and live peer reconfiguration.</summary>
[Trait("Category", "Unit")]
public sealed class WireGuardDeviceRoutingTests
{
    [Fact]
    public void PacketWithASourceOutsideTheSendersAllowedIpsIsDropped()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        var c = bed.AddNode("c", 3);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.Connect(b, c);

        a.Device.WritePacket(IpPacketBuilder.Udp(IPAddress.Parse("10.0.0.99"), b.TunnelV4, 1, 2, new byte[10]));
        a.Device.WritePacket(IpPacketBuilder.Udp(c.TunnelV4, b.TunnelV4, 1, 2, new byte[10])); // C's address, sent by A
        a.Device.WritePacket(IpPacketBuilder.Udp(IPAddress.Parse("fd00::99"), b.TunnelV6, 1, 2, new byte[10]));
        bed.Pump();

        b.Inbound.Drain().Should().BeEmpty();
        b.Counters[WireGuardDropReason.DisallowedSourceAddress].Should().Be(3);
    }

    [Fact]
    public void OutboundPacketsWithoutAMatchingPeerOrMalformedAreDroppedAndCounted()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        a.Device.WritePacket(IpPacketBuilder.Udp(a.TunnelV4, IPAddress.Parse("10.9.9.9"), 1, 2, new byte[10]));
        a.Device.WritePacket(IpPacketBuilder.Udp(a.TunnelV6, IPAddress.Parse("fd00::9"), 1, 2, new byte[10]));
        a.Device.WritePacket([]);
        a.Device.WritePacket(new byte[] { 0x45, 0, 0, 10 });
        a.Device.WritePacket(new byte[60]); // version 0
        a.Counters[WireGuardDropReason.NoRoute].Should().Be(2);
        a.Counters[WireGuardDropReason.InvalidOutboundPacket].Should().Be(3);
        a.Counters.HandshakeInitiationsSent.Should().Be(0);
    }

    [Fact]
    public void InnerPacketIsTrimmedToItsIpLengthAndMalformedInnerPacketsAreDropped()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        var packet = IpPacketBuilder.Udp(a.TunnelV4, b.TunnelV4, 1, 2, new byte[13]);
        a.Device.WritePacket(packet);
        bed.Pump();
        b.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(packet, "padding is removed using the IP total length");

        var peer = a.PeerOf(b);
        var lying = (byte[])packet.Clone();
        lying[2] = 0x7F; // total length beyond the packet
        peer.SendPacket(lying);
        peer.SendPacket(new byte[] { 0x00, 1, 2, 3, 4, 5, 6, 7 }); // not IP
        peer.SendPacket(new byte[] { 0x60, 0, 0, 0 });              // truncated IPv6
        bed.Pump();
        b.Counters[WireGuardDropReason.InvalidInnerPacket].Should().Be(3);
        b.Inbound.Drain().Should().BeEmpty();
    }

    [Fact]
    public void PeerRoamsToTheSourceOfAuthenticatedPacketsOnly()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();

        ushort newPort = a.Device.SetListenPort(0);
        newPort.Should().NotBe(51820);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Inbound.Drain().Should().HaveCount(2);
        b.PeerOf(a).Endpoint.Port.Should().Be(newPort, "B follows A to its new port");
        b.Device.GetPeer(a.Device.PublicKey)!.Endpoint!.Port.Should().Be(newPort);

        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Inbound.Drain().Should().ContainSingle("B's reply reaches A at the new port");

        // Garbage from elsewhere must not move the endpoint.
        var spoofer = bed.Attacker("192.0.2.77");
        var forged = bed.Captured.Last(c => c.From.Port == newPort && c.Datagram[0] == 4).Datagram;
        forged[^1] ^= 1;
        spoofer.Send(forged, b.Endpoint);
        bed.Pump();
        b.PeerOf(a).Endpoint.Port.Should().Be(newPort);
        b.Counters[WireGuardDropReason.DecryptionFailed].Should().Be(1);
    }

    [Fact]
    public void PeersCanBeChangedAndRemovedWhileTrafficFlows()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        var c = bed.AddNode("c", 3);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.Connect(a, c);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        var session = a.PeerOf(b).CurrentKeypair;

        // Give B a whole extra subnet; the session is untouched.
        var extra = new IPNetwork(IPAddress.Parse("10.1.0.0"), 16);
        var config = DeviceTestBed.PeerConfig(b);
        config.AllowedIps = [.. config.AllowedIps, extra];
        a.Device.SetPeer(config);
        b.Device.SetPeer(DeviceTestBed.PeerConfig(a));
        a.Device.WritePacket(IpPacketBuilder.Udp(a.TunnelV4, IPAddress.Parse("10.1.2.3"), 1, 2, new byte[5]));
        bed.Pump();
        b.Inbound.Drain().Should().HaveCount(2);
        a.PeerOf(b).CurrentKeypair.Should().BeSameAs(session);
        a.Device.GetPeer(b.Device.PublicKey)!.AllowedIps.Should().Contain(extra);

        // Move the subnet to C.
        var cConfig = DeviceTestBed.PeerConfig(c);
        cConfig.AllowedIps = [.. cConfig.AllowedIps, extra];
        a.Device.SetPeer(cConfig);
        a.Device.WritePacket(IpPacketBuilder.Udp(a.TunnelV4, IPAddress.Parse("10.1.2.3"), 1, 2, new byte[5]));
        bed.Pump();
        c.Inbound.Drain().Should().ContainSingle();
        a.Device.GetPeer(b.Device.PublicKey)!.AllowedIps.Should().NotContain(extra);

        // Remove B: no route to it, and its packets no longer authenticate here.
        a.Device.RemovePeer(b.Device.PublicKey).Should().BeTrue();
        a.Device.GetPeer(b.Device.PublicKey).Should().BeNull();
        DeviceTestBed.SendUdp(a, b);
        a.Counters[WireGuardDropReason.NoRoute].Should().Be(1);
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Inbound.Drain().Should().BeEmpty();
        a.Counters[WireGuardDropReason.UnknownReceiverIndex].Should().BeGreaterThan(0);
        session!.IsRetired.Should().BeTrue("removing a peer zeroes its keys");

        // Adding it back works with a new handshake.
        a.Device.SetPeer(DeviceTestBed.PeerConfig(b));
        bed.Time.Advance(TimeSpan.FromSeconds(6));
        DeviceTestBed.SendUdp(a, b);
        bed.Advance(TimeSpan.FromSeconds(6));
        b.Inbound.Drain().Should().NotBeEmpty();
        c.Inbound.Drain().Should().BeEmpty();
    }

    [Fact]
    public void ChangingThePrivateKeyRestartsSessionsUnderTheNewIdentity()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        var oldKey = a.Device.PublicKey;

        using var newKey = WireGuardPrivateKey.Generate();
        a.Device.SetPrivateKey(newKey);
        a.Device.PublicKey.Should().Be(newKey.PublicKey);
        a.PeerOf(b).CurrentKeypair.Should().BeNull();
        b.Device.RemovePeer(oldKey);
        b.Device.SetPeer(DeviceTestBed.PeerConfig(a));

        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Inbound.Drain().Should().HaveCount(2);
        a.Counters.SessionsEstablished.Should().Be(2);
    }

    [Fact]
    public void InvalidPeerConfigurationIsRejectedWithTheReason()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var self = () => a.Device.SetPeer(new WireGuardPeerConfig(a.Device.PublicKey));
        self.Should().Throw<ArgumentException>().WithMessage("*own public key*");
        var zero = () => a.Device.SetPeer(new WireGuardPeerConfig(WireGuardPublicKey.FromBytes(new byte[32])));
        zero.Should().Throw<ArgumentException>().WithMessage("*all zero*");
        using var other = WireGuardPrivateKey.Generate();
        var keepalive = () => a.Device.SetPeer(new WireGuardPeerConfig(other.PublicKey) { PersistentKeepalive = TimeSpan.FromDays(2) });
        keepalive.Should().Throw<ArgumentException>().WithMessage("*PersistentKeepalive*");
    }
}
