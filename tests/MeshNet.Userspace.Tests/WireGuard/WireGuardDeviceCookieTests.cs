using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>The under-load path: cookie replies, mac2 and the per-source rate limit.</summary>
[Trait("Category", "Unit")]
public sealed class WireGuardDeviceCookieTests
{
    private static void Flood(DeviceTestBed bed, TestNode target, int count)
    {
        var attacker = bed.Attacker("192.0.2.200");
        var junk = new byte[WireGuardProtocol.InitiationSize];
        junk[0] = 1;
        for (int i = 0; i < count; i++)
        {
            Random.Shared.NextBytes(junk.AsSpan(4));
            attacker.Send(junk, target.Endpoint);
        }
        bed.Network.DeliverPending();
        attacker.Close();
    }

    [Fact]
    public void UnderLoadAnInitiationWithoutMac2GetsACookieAndTheRetryWithMac2Succeeds()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);

        // A's initiation reaches B behind a flood: B is under load when it gets to it.
        DeviceTestBed.SendUdp(a, b);
        Flood(bed, b, 300);
        bed.Network.DeliverPending();
        b.Device.PendingHandshakes.Should().BeGreaterThanOrEqualTo(WireGuardProtocol.UnderLoadQueueLength);
        bed.Pump();
        b.Counters.CookieRepliesSent.Should().Be(1);
        b.Counters[WireGuardDropReason.CookieRequired].Should().Be(1);
        b.Counters[WireGuardDropReason.InvalidMac1].Should().Be(300, "junk without a valid mac1 never costs a DH");
        a.Counters.CookieRepliesAccepted.Should().Be(1);
        a.Counters.SessionsEstablished.Should().Be(0);

        // Let the retransmit timer fire, and hold A's retry in B's queue behind another flood.
        while (b.Device.PendingHandshakes == 0)
        {
            bed.Time.Advance(TimeSpan.FromMilliseconds(50));
            bed.Network.DeliverPending();
        }
        var retry = bed.CapturedFrom(a, 1).Last();
        retry.AsSpan(^16..).ToArray().Should().NotEqual(new byte[16], "the retry carries a mac2 made with the cookie");
        Flood(bed, b, 300);
        bed.Pump();

        b.Counters.CookieRepliesSent.Should().Be(1, "a valid mac2 passes while under load");
        a.Counters.SessionsEstablished.Should().Be(1);
        b.Inbound.Drain().Should().ContainSingle();
    }

    [Fact]
    public void UnderLoadEachSourceIsRateLimited()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        var peer = a.PeerOf(b);

        // Obtain a cookie: one initiation behind a flood.
        peer.SendHandshakeInitiation(isRetry: false);
        Flood(bed, b, 200);
        bed.Pump();
        a.Counters.CookieRepliesAccepted.Should().Be(1);

        // Twenty initiations with valid mac2 from A's address at once, behind a flood.
        var protocol = a.Device.Context.Handshakes;
        for (int i = 0; i < 20; i++)
        {
            var message = new byte[WireGuardProtocol.InitiationSize];
            protocol.CreateInitiation(peer, message).Should().BeTrue();
            peer.CookieGenerator.AddMacs(message);
            a.Bind.Send(message, b.Endpoint);
            bed.Time.Advance(TimeSpan.FromMilliseconds(1));
        }
        bed.Network.DeliverPending();
        Flood(bed, b, 200);
        bed.Pump();

        b.Counters[WireGuardDropReason.RateLimited].Should().Be(15, "the bucket allows a burst of 5 per source");
    }

    [Fact]
    public void CookieReplyForAnUnknownIndexOrForgedIsDropped()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var attacker = bed.Attacker("192.0.2.201");
        var reply = new byte[WireGuardProtocol.CookieReplySize];
        reply[0] = 3;
        Random.Shared.NextBytes(reply.AsSpan(4));
        attacker.Send(reply, a.Endpoint);
        bed.Pump();
        a.Counters[WireGuardDropReason.InvalidCookieReply].Should().Be(1);
    }
}
