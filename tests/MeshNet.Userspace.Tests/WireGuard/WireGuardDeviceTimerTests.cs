using MeshNet.Userspace.Conn;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>WireGuard's timers on a fake clock: retries, keepalives, dead-peer detection, zeroing.</summary>
[Trait("Category", "Unit")]
public sealed class WireGuardDeviceTimerTests
{
    [Fact]
    public void HandshakeRetriesEveryRekeyTimeoutWithJitterAndGivesUpAfter20Initiations()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        var sentAt = new List<(DateTimeOffset Time, byte[] Ephemeral)>();
        bed.Policy = (from, _, datagram) =>
        {
            if (from == a.Endpoint && datagram[0] == 1)
            {
                sentAt.Add((bed.Time.GetUtcNow(), datagram[8..40]));
            }
            return MemoryVerdict.Drop; // B is unreachable
        };

        DeviceTestBed.SendUdp(a, b);
        bed.Advance(TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(10));

        sentAt.Should().HaveCount(20, "the first try plus MaxTimerHandshakes + 1 retries, as wireguard-go and Linux do");
        for (int i = 1; i < sentAt.Count; i++)
        {
            var gap = sentAt[i].Time - sentAt[i - 1].Time;
            gap.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(5)).And.BeLessThan(TimeSpan.FromMilliseconds(5345),
                "each retry comes RekeyTimeout plus up to 333 ms of jitter later");
        }
        sentAt.Select(s => Convert.ToHexString(s.Ephemeral)).Distinct().Should().HaveCount(20, "every try uses a new ephemeral key");
        a.Counters[WireGuardDropReason.HandshakeGaveUp].Should().Be(1, "the staged packet is dropped on giving up");
        a.PeerOf(b).StagedCount.Should().Be(0);

        bed.Advance(TimeSpan.FromSeconds(300), TimeSpan.FromSeconds(1));
        sentAt.Should().HaveCount(20, "no further tries without new traffic");
    }

    [Fact]
    public void NewTrafficAfterGivingUpStartsAFreshSeriesOfTries()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        bed.Policy = (_, _, _) => MemoryVerdict.Drop;
        DeviceTestBed.SendUdp(a, b);
        bed.Advance(TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(50));
        a.Counters.HandshakeInitiationsSent.Should().Be(20);

        bed.Policy = null;
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Inbound.Drain().Should().ContainSingle();
    }

    [Fact]
    public void PassiveKeepaliveIsSentTenSecondsAfterReceivingDataWhenNothingWasSent()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        b.Counters.KeepalivesSent.Should().Be(0);

        bed.Advance(TimeSpan.FromSeconds(9.9));
        b.Counters.KeepalivesSent.Should().Be(0);
        bed.Advance(TimeSpan.FromSeconds(0.2));
        b.Counters.KeepalivesSent.Should().Be(1, "B answers received data with a keepalive after KeepaliveTimeout");

        bed.Advance(TimeSpan.FromSeconds(60));
        b.Counters.KeepalivesSent.Should().Be(1, "and only once while no more data arrives");
        a.Counters.HandshakeInitiationsSent.Should().Be(1, "the keepalive told A that B is alive");
    }

    [Fact]
    public void ReplyingWithDataSuppressesThePassiveKeepalive()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        bed.Advance(TimeSpan.FromSeconds(3));
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        bed.Advance(TimeSpan.FromSeconds(10));
        b.Counters.KeepalivesSent.Should().Be(0);
    }

    [Fact]
    public void DeadPeerDetectionStartsAHandshakeFifteenSecondsAfterUnansweredData()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(1);

        bed.Policy = (from, _, _) => from == b.Endpoint ? MemoryVerdict.Drop : MemoryVerdict.Deliver;
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        bed.Advance(TimeSpan.FromSeconds(14.9));
        a.Counters.HandshakeInitiationsSent.Should().Be(1);
        bed.Advance(TimeSpan.FromSeconds(0.5));
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "KeepaliveTimeout + RekeyTimeout (+ jitter) without an answer");
    }

    [Fact]
    public void PersistentKeepaliveKeepsAnIdleTunnelAlive()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        b.Device.SetPeer(DeviceTestBed.PeerConfig(a));
        var keepalives = new List<DateTimeOffset>();
        bed.Policy = (from, _, datagram) =>
        {
            if (from == a.Endpoint && datagram[0] == 4 && datagram.Length == 32)
            {
                keepalives.Add(bed.Time.GetUtcNow());
            }
            return MemoryVerdict.Deliver;
        };
        a.Device.SetPeer(DeviceTestBed.PeerConfig(b, keepalive: TimeSpan.FromSeconds(25)));
        bed.Pump();
        a.Counters.SessionsEstablished.Should().Be(1, "turning persistent keepalive on sends one right away");

        bed.Advance(TimeSpan.FromSeconds(101), TimeSpan.FromMilliseconds(250));
        keepalives.Should().HaveCount(5);
        for (int i = 1; i < keepalives.Count; i++)
        {
            (keepalives[i] - keepalives[i - 1]).Should().BeCloseTo(TimeSpan.FromSeconds(25), TimeSpan.FromMilliseconds(300));
        }
    }

    [Fact]
    public void KeyMaterialIsZeroedAfterThreeTimesRejectAfterTime()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        var keypair = a.PeerOf(b).CurrentKeypair!;

        bed.Advance(TimeSpan.FromSeconds(539), TimeSpan.FromSeconds(1));
        a.PeerOf(b).CurrentKeypair.Should().BeSameAs(keypair);
        bed.Advance(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1));
        a.PeerOf(b).CurrentKeypair.Should().BeNull("no new session in 540 s: every key is zeroed");
        a.PeerOf(b).PreviousKeypair.Should().BeNull();
        keypair.IsRetired.Should().BeTrue();
        b.PeerOf(a).CurrentKeypair.Should().BeNull();
        a.Device.Context.Indices.Count.Should().Be(0, "no index keeps pointing at zeroed keys");
    }

    [Fact]
    public void InitiatorRekeysOnceOnReceiveWhenItsSessionIs165SecondsOld()
    {
        using var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        bed.Advance(TimeSpan.FromSeconds(164), TimeSpan.FromSeconds(1));
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(1);

        bed.Advance(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1));
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        a.Counters.HandshakeInitiationsSent.Should().Be(2, "past 165 s the initiator starts a last-minute handshake on receive");
        a.Inbound.Drain().Should().HaveCount(2);
    }
}
