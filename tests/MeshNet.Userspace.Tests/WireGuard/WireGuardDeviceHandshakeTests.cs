using System.Net;
using MeshNet.TestSupport;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>Handshakes, key confirmation and session lifetimes between two in-memory devices.</summary>
[Trait("Category", "Unit")]
public sealed class WireGuardDeviceHandshakeTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FirstPacketStartsAHandshakeAndIsDeliveredAfterIt(bool ipv6)
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);

        var sent = DeviceTestBed.SendUdp(a, b, 200, ipv6);
        a.PeerOf(b).StagedCount.Should().Be(1, "the packet waits for the handshake");
        bed.Pump();

        b.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(sent);
        a.Counters.HandshakeInitiationsSent.Should().Be(1);
        b.Counters.HandshakeResponsesSent.Should().Be(1);
        a.Counters.SessionsEstablished.Should().Be(1);
        b.Counters.SessionsEstablished.Should().Be(1);
        a.Counters.TotalDropped.Should().Be(0, a.Counters.ToString());
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());
        a.Device.GetPeer(b.Device.PublicKey)!.LastHandshake.Should().Be(bed.Time.GetUtcNow());
    }

    [Fact]
    public void AnInitiationAskedForIsSentOncePerRekeyTimeoutUnlessThePeerIsKnownToHaveRestarted()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        a.Device.InitiateHandshake(b.Device.PublicKey).Should().BeTrue();
        bed.Pump();
        a.Counters.SessionsEstablished.Should().Be(1);

        bed.Time.Advance(TimeSpan.FromSeconds(1));
        a.Device.InitiateHandshake(b.Device.PublicKey);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(1, "one was sent less than RekeyTimeout ago");

        a.Device.InitiateHandshake(b.Device.PublicKey, evenIfRecent: true);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "the peer restarted: its sessions from before are gone");
        a.Counters.SessionsEstablished.Should().Be(2);
        a.Device.InitiateHandshake(b.Device.PublicKey, evenIfRecent: true);
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "never within the 20 ms the responder would refuse as a flood");
        a.PeerOf(b).Timers.DeferredInitiationPending.Should().BeTrue("but not dropped either: it waits for the 20 ms to pass");
        bed.Time.Advance(TimeSpan.FromMilliseconds(19));
        a.Counters.HandshakeInitiationsSent.Should().Be(2);
        bed.Time.Advance(TimeSpan.FromMilliseconds(2));
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(3);
        a.Counters.SessionsEstablished.Should().Be(3);
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());

        // Once RekeyTimeout (5 s) has passed since the last one, an ordinary request sends again.
        bed.Time.Advance(TimeSpan.FromSeconds(4.9));
        a.Device.InitiateHandshake(b.Device.PublicKey);
        a.Counters.HandshakeInitiationsSent.Should().Be(3, "4.9 s after the last one");
        bed.Time.Advance(TimeSpan.FromSeconds(0.2));
        a.Device.InitiateHandshake(b.Device.PublicKey);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(4, "5.1 s after the last one");

        using var stranger = WireGuardPrivateKey.Generate();
        a.Device.InitiateHandshake(stranger.PublicKey).Should().BeFalse("not a configured peer");
    }

    [Fact]
    public void APeerThatRestartsRightAfterAHandshakeGetsANewOneWithinMillisecondsNotAfterTheDeadPeerTimeout()
    {
        // The race behind a flaky end-to-end test: A completes a handshake with B, B restarts
        // (losing every session) and A learns of it from the netmap a few milliseconds later.
        // The forced initiation falls within 20 ms of the last one; dropped, A would send on a
        // session B no longer has until the dead-peer timeout (15 s) started a new handshake.
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        a.Device.InitiateHandshake(b.Device.PublicKey);
        bed.Pump();
        a.Counters.SessionsEstablished.Should().Be(1);

        bed.Time.Advance(TimeSpan.FromMilliseconds(5));
        b.Device.RemovePeer(a.Device.PublicKey);
        b.Device.SetPeer(DeviceTestBed.PeerConfig(a));
        a.Device.InitiateHandshake(b.Device.PublicKey, evenIfRecent: true).Should().BeTrue();
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(1);

        bed.Advance(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1));
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "the deferred initiation went out once the flood limit passed");
        b.Counters.SessionsEstablished.Should().Be(2, "B has a session with A again");
        var sent = DeviceTestBed.SendUdp(a, b, 300);
        bed.Pump();
        b.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(sent);
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());
    }

    [Fact]
    public void APeerThatGetsItsFirstEndpointWhilePacketsWaitIsSentAnInitiationAtOnce()
    {
        // A node may dial a peer it knows from the netmap before the peer has reported where it
        // listens: the first initiation has nowhere to go. The endpoint arriving a moment later
        // starts the handshake again instead of leaving it to the 5-second retry.
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        var noEndpoint = DeviceTestBed.PeerConfig(b);
        noEndpoint.Endpoint = null;
        a.Device.SetPeer(noEndpoint);
        b.Device.SetPeer(DeviceTestBed.PeerConfig(a));
        var sent = DeviceTestBed.SendUdp(a, b, 200);
        bed.Pump();
        a.Counters[WireGuardDropReason.NoEndpoint].Should().Be(1, "the initiation had nowhere to go");
        a.PeerOf(b).StagedCount.Should().Be(1);

        bed.Time.Advance(TimeSpan.FromMilliseconds(3));
        a.Device.SetPeer(DeviceTestBed.PeerConfig(b));
        bed.Advance(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1));
        b.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(sent);
        a.Counters.SessionsEstablished.Should().Be(1);

        // Setting the same endpoint again with nothing waiting starts nothing.
        long initiations = a.Counters.HandshakeInitiationsSent;
        a.Device.SetPeer(DeviceTestBed.PeerConfig(b));
        bed.Advance(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(5));
        a.Counters.HandshakeInitiationsSent.Should().Be(initiations);
    }

    [Fact]
    public void TrafficFlowsBothWaysAfterTheHandshake()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);

        // Both sides start at once (their initiations cross; see the next test).
        for (int i = 0; i < 50; i++)
        {
            DeviceTestBed.SendUdp(a, b, i * 20, ipv6: i % 2 == 0, fill: (byte)i);
            DeviceTestBed.SendUdp(b, a, i * 20 + 1, ipv6: i % 2 == 1, fill: (byte)i);
            bed.Pump();
        }
        b.Inbound.Drain().Should().HaveCount(50, "A: " + a.Counters + " B: " + b.Counters);
        a.Inbound.Drain().Should().HaveCount(50);
        a.Counters.TotalDropped.Should().Be(0, a.Counters.ToString());
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CrossedInitiationsCompleteInOneRoundTripInsteadOfWaitingForTheRetry(bool presharedKey)
    {
        // Both sides send their first packet at the same moment (every node of a mesh dialing
        // every other): each receives the other's initiation while waiting for the response to
        // its own. wireguard-go and Linux answer it and then drop the response to their own
        // initiation, so both sides wait RekeyTimeout (5 s) for a retry, and the retries may
        // cross again. Here each side sets its own initiation aside, answers the peer's, and still
        // accepts the peer's response: both sessions are up at once, nothing is dropped.
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        using var psk = presharedKey ? WireGuardPresharedKey.Generate() : null;
        DeviceTestBed.Connect(a, b, psk: psk);
        var fromA = DeviceTestBed.SendUdp(a, b, 120);
        var fromB = DeviceTestBed.SendUdp(b, a, 130);
        bed.Pump();

        b.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(fromA);
        a.Inbound.Drain().Should().ContainSingle().Which.Should().Equal(fromB);
        a.PeerOf(b).CrossedInitiation.PresharedKey.Should().OnlyContain(x => x == 0, "the set-aside initiation's copy of the key is zeroed with it");
        b.PeerOf(a).CrossedInitiation.PresharedKey.Should().OnlyContain(x => x == 0);
        a.PeerOf(b).Handshake.PresharedKey.Any(x => x != 0).Should().Be(presharedKey, "the configured key itself stays");
        a.Counters.CrossedHandshakes.Should().Be(1);
        b.Counters.CrossedHandshakes.Should().Be(1);
        a.Counters.HandshakeInitiationsSent.Should().Be(1, "no retry was needed");
        b.Counters.HandshakeInitiationsSent.Should().Be(1);
        a.Counters.TotalDropped.Should().Be(0, a.Counters.ToString());
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());
        a.PeerOf(b).CrossedInitiation.Stage.Should().Be(HandshakeStage.Zeroed, "the set-aside initiation completed and was zeroed");
        a.PeerOf(b).Timers.RetransmitPending.Should().BeFalse();

        // Traffic keeps flowing both ways, through the rekey after RekeyAfterTime.
        for (int i = 0; i < 40; i++)
        {
            DeviceTestBed.SendUdp(a, b, 50 + i);
            DeviceTestBed.SendUdp(b, a, 60 + i);
            bed.Advance(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1));
        }
        b.Inbound.Drain().Should().HaveCount(40, b.Counters.ToString());
        a.Inbound.Drain().Should().HaveCount(40, a.Counters.ToString());
        a.Counters.TotalDropped.Should().Be(0, a.Counters.ToString());
        b.Counters.TotalDropped.Should().Be(0, b.Counters.ToString());
    }

    [Fact]
    public void ACrossedInitiationWhoseResponseNeverComesIsForgottenAtTheNextAttempt()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        // B's answer to A's initiation is lost; A's answer to B's arrives.
        bed.Policy = (from, to, datagram) => from == b.Endpoint && datagram[0] == 2 ? MemoryVerdict.Drop : MemoryVerdict.Deliver;
        DeviceTestBed.SendUdp(a, b);
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Counters.CrossedHandshakes.Should().Be(1);
        var crossed = a.PeerOf(b).CrossedInitiation;
        crossed.Stage.Should().Be(HandshakeStage.InitiationCreated, "A still waits for the answer to its own initiation");
        uint index = crossed.LocalIndex;
        a.Device.IsIndexInUse(index).Should().BeTrue();

        // B's session with A works (B initiated); A's next initiation supersedes the set-aside one.
        bed.Policy = null;
        bed.Advance(TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(1)); // past the 20 ms flood limit
        a.Device.InitiateHandshake(b.Device.PublicKey, evenIfRecent: true).Should().BeTrue();
        bed.Pump();
        crossed.Stage.Should().Be(HandshakeStage.Zeroed);
        crossed.LocalEphemeral.Should().BeNull("its ephemeral key is disposed");
        a.Device.IsIndexInUse(index).Should().BeFalse("its index is released");
    }

    [Fact]
    public void AHandshakeStepOnAPeerRemovedMeanwhileLeavesNoIndexAndNoKey()
    {
        // A timer or InitiateHandshake that saw the peer running just before RemovePeer reaches
        // the protocol after the peer's handshake was zeroed: nothing may be recreated there.
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        var peer = a.PeerOf(b);
        a.Device.RemovePeer(b.Device.PublicKey).Should().BeTrue();

        var message = new byte[WireGuardProtocol.InitiationSize];
        a.Device.Handshakes.CreateInitiation(peer, message).Should().BeFalse();
        peer.Handshake.LocalIndex.Should().Be(0u, "no index was allocated for it");
        peer.Handshake.LocalEphemeral.Should().BeNull("no ephemeral key was made");
        message.Should().OnlyContain(x => x == 0);
    }

    [Fact]
    public void ResponderKeepsTheNewSessionAsNextUntilTheInitiatorConfirmsIt()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        // Hold back A's keepalive (the confirmation) to look at B in between.
        bool holdTransport = true;
        bed.Policy = (from, to, datagram) => holdTransport && from == a.Endpoint && datagram[0] == 4
            ? MemoryVerdict.Drop
            : MemoryVerdict.Deliver;

        a.PeerOf(b).SendHandshakeInitiation(isRetry: false);
        bed.Pump();
        var bPeer = b.PeerOf(a);
        bPeer.NextKeypair.Should().NotBeNull("the responder derived a session");
        bPeer.CurrentKeypair.Should().BeNull("but may not send on it before key confirmation");
        a.PeerOf(b).CurrentKeypair.Should().NotBeNull("the initiator can use its session at once");
        a.Counters.KeepalivesSent.Should().Be(1, "the initiator confirms with a keepalive right away");

        // B's packet must wait (staged), not go out on an unconfirmed session.
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Inbound.Drain().Should().BeEmpty();
        bPeer.StagedCount.Should().Be(1);

        holdTransport = false;
        a.PeerOf(b).SendKeepalive();
        bed.Pump();
        bPeer.CurrentKeypair.Should().NotBeNull("the first packet on 'next' confirms it");
        bPeer.NextKeypair.Should().BeNull();
        a.Inbound.Drain().Should().ContainSingle("the staged packet is flushed on confirmation");
    }

    [Fact]
    public void MatchingPresharedKeysConnectAndMismatchedOnesDoNot()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        using var psk = WireGuardPresharedKey.Generate();
        DeviceTestBed.Connect(a, b, psk: psk);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Inbound.Drain().Should().ContainSingle();
        a.Device.GetPeer(b.Device.PublicKey)!.HasPresharedKey.Should().BeTrue();

        var c = bed.AddNode("c", 3);
        using var other = WireGuardPresharedKey.Generate();
        a.Device.SetPeer(DeviceTestBed.PeerConfig(c, psk: psk));
        c.Device.SetPeer(DeviceTestBed.PeerConfig(a, psk: other));
        DeviceTestBed.SendUdp(a, c);
        bed.Pump();
        c.Inbound.Drain().Should().BeEmpty();
        a.Counters[WireGuardDropReason.HandshakeFailed].Should().Be(1, "the response does not authenticate with the wrong psk");
    }

    [Fact]
    public void InitiatorRekeysOnSendAfter120Seconds()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        var first = a.PeerOf(b).CurrentKeypair;

        bed.Advance(TimeSpan.FromSeconds(119));
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(1, "a 119 s old session is still fresh");

        bed.Advance(TimeSpan.FromSeconds(1.5));
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "past RekeyAfterTime the initiator rekeys");
        a.PeerOf(b).CurrentKeypair.Should().NotBeSameAs(first);
        a.PeerOf(b).PreviousKeypair.Should().BeSameAs(first, "the old session stays as previous for in-flight packets");
        b.Inbound.Drain().Should().HaveCount(3, "no packet was lost across the rekey");
    }

    [Fact]
    public void ResponderDoesNotRekeyByTimeOnSend()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();

        bed.Advance(TimeSpan.FromSeconds(130), TimeSpan.FromSeconds(1));
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        b.Counters.HandshakeInitiationsSent.Should().Be(0, "only the initiator rekeys by age on send");
    }

    [Fact]
    public void RekeyByMessageCount()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        // The responder's session is past RekeyAfterMessages: its next send starts a handshake.
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        b.PeerOf(a).CurrentKeypair!.SetSendNonceForTest(WireGuardProtocol.RekeyAfterMessages + 1);
        bed.Advance(TimeSpan.FromSeconds(6)); // past the initiation rate limit set by B's response
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        b.Counters.HandshakeInitiationsSent.Should().Be(1);
        a.Inbound.Drain().Should().HaveCount(2);
    }

    [Fact]
    public void SessionIsNotUsedPastRejectAfterMessages()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        var exhausted = a.PeerOf(b).CurrentKeypair!;
        exhausted.SetSendNonceForTest(WireGuardProtocol.RejectAfterMessages);
        long sentBefore = a.Counters.TransportMessagesSent;
        bed.Time.Advance(TimeSpan.FromSeconds(6)); // past the 5 s initiation rate limit

        DeviceTestBed.SendUdp(a, b);
        a.Counters.TransportMessagesSent.Should().Be(sentBefore, "no packet may use a counter >= RejectAfterMessages");
        a.Counters.HandshakeInitiationsSent.Should().Be(2);
        bed.Pump();
        b.Inbound.Drain().Should().HaveCount(2, "the packet went out on the new session");
        a.PeerOf(b).CurrentKeypair.Should().NotBeSameAs(exhausted);
    }

    [Fact]
    public void SessionOlderThan180SecondsIsRejectedBothWays()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Inbound.Drain();

        // Capture a transport message on the old session, then let the session expire while
        // the network is down.
        DeviceTestBed.SendUdp(a, b);
        var oldTransport = bed.Captured.Last(c => c.From == a.Endpoint && c.Datagram[0] == 4).Datagram;
        bed.Pump();
        b.Inbound.Drain();
        bed.Policy = (_, _, _) => MemoryVerdict.Drop;
        bed.Time.Advance(TimeSpan.FromSeconds(181));

        long sentBefore = a.Counters.TransportMessagesSent;
        DeviceTestBed.SendUdp(a, b);
        a.Counters.TransportMessagesSent.Should().Be(sentBefore, "a session past RejectAfterTime is never used to send");
        a.PeerOf(b).StagedCount.Should().Be(1);

        // Replaying a captured message (new counter space is irrelevant: it is expired).
        bed.Policy = null;
        var attacker = bed.Attacker("192.0.2.66");
        var replay = (byte[])oldTransport.Clone();
        replay[8] ^= 0x7F; // a counter never seen, so only the age can reject it
        attacker.Send(replay, b.Endpoint);
        bed.Network.DeliverPending();
        b.Counters[WireGuardDropReason.ExpiredSession].Should().Be(1);
        b.Inbound.Drain().Should().BeEmpty();
    }

    [Fact]
    public void ReplayedInitiationAndInitiationFloodAreDropped()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        a.PeerOf(b).SendHandshakeInitiation(isRetry: false);
        var initiation = bed.CapturedFrom(a, 1).Single();
        bed.Pump();
        b.Counters.HandshakeResponsesSent.Should().Be(1);

        // The very same initiation again: its timestamp is not newer.
        var attacker = bed.Attacker("192.0.2.66");
        bed.Time.Advance(TimeSpan.FromSeconds(1));
        attacker.Send(initiation, b.Endpoint);
        bed.Pump();
        b.Counters[WireGuardDropReason.ReplayedInitiation].Should().Be(1);
        b.PeerOf(a).Endpoint.Should().Be(a.Endpoint, "an unauthenticated replay never moves the endpoint");

        // Two fresh initiations 17 ms apart: newer timestamps (TAI64N moves in ~16.8 ms steps),
        // but the second comes within 20 ms of the first.
        var protocol = a.Device.Context.Handshakes;
        var first = new byte[WireGuardProtocol.InitiationSize];
        var second = new byte[WireGuardProtocol.InitiationSize];
        protocol.CreateInitiation(a.PeerOf(b), first).Should().BeTrue();
        a.PeerOf(b).CookieGenerator.AddMacs(first);
        bed.Time.Advance(TimeSpan.FromMilliseconds(17));
        protocol.CreateInitiation(a.PeerOf(b), second).Should().BeTrue();
        a.PeerOf(b).CookieGenerator.AddMacs(second);
        attacker.Send(first, b.Endpoint);
        bed.Network.DeliverPending();
        b.Device.ProcessPendingHandshakes();
        attacker.Send(second, b.Endpoint);
        bed.Network.DeliverPending();
        b.Device.ProcessPendingHandshakes();
        b.Counters[WireGuardDropReason.InitiationFlood].Should().Be(1);
        b.Counters.HandshakeResponsesSent.Should().Be(2);
    }

    [Fact]
    public void ExchangeIsAllocationFreeInSteadyState()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        var packet = IpPacketBuilder.Udp(a.TunnelV4, b.TunnelV4, 1, 2, new byte[1200]);
        bed.Network.Filter = null; // the capturing filter copies datagrams
        for (int i = 0; i < 200; i++)
        {
            a.Device.WritePacket(packet);
            bed.Network.DeliverPending();
            b.Device.ProcessPendingHandshakes();
            a.Device.ProcessPendingHandshakes();
            bed.Network.DeliverPending();
        }
        b.Inbound.Drain().Should().HaveCount(200);
        b.Inbound.KeepPackets = false;
        long delivered = b.Inbound.Count;
        // The least of five runs of 1,000 packets: a one-off allocation (the JIT installing a
        // re-optimized method) shows in one run, an allocation per packet (24 bytes or more) in
        // every run, as at least 24 KB.
        int runs = 0;
        long allocated = AllocationMeter.LeastOf(5, () =>
        {
            runs++;
            for (int i = 0; i < 1000; i++)
            {
                a.Device.WritePacket(packet);
                bed.Network.DeliverPending();
            }
        });
        (b.Inbound.Count - delivered).Should().Be(1000L * runs);
        allocated.Should().BeLessThan(4 * 1024, "encrypting, sending, receiving and decrypting allocate nothing per packet");
    }
}
