using System.Net.Sockets;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>ESTABLISHED, sending: segmentation, Nagle, the peer's window, persist and retransmission timers, keepalive.</summary>
[Trait("Category", "Unit")]
public sealed class TcpEstablishedSendTests
{
    [Fact]
    public void WritesAreSplitIntoMssSizedSegmentsAndNagleHoldsTheTail()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var data = TcpTestConnection.Bytes(3000);
        c.Write(data).Should().Be(3000);
        var sent = c.Sent();
        sent.Select(s => s.Payload.Length).Should().Equal(1380, 1380);
        sent[0].Seq.Should().Be(c.OurIss + 1);
        sent[1].Seq.Should().Be(c.OurIss + 1 + 1380);
        sent.Should().OnlyContain(s => s.Flags == TcpFlags.Ack && s.Ack == 1001 && s.Window == 65535);
        c.AckUpTo();
        var tail = c.Single();
        tail.Payload.Should().Equal(data[2760..]);
        tail.Flags.Should().Be(TcpFlags.Ack | TcpFlags.Psh);
    }

    [Fact]
    public void SmallWritesWaitForTheAckOfOutstandingDataUnlessNoDelay()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(10));
        c.Single().Payload.Should().HaveCount(10, "nothing is in flight: the first small segment goes at once");
        c.Write(TcpTestConnection.Bytes(10));
        c.Write(TcpTestConnection.Bytes(10));
        h.Silence("Nagle: a small segment waits while data is unacknowledged");
        c.AckUpTo(c.OurIss + 11);
        c.Single().Payload.Should().HaveCount(20);

        c.Cb.NoDelay = true;
        c.Write(TcpTestConnection.Bytes(10));
        c.Write(TcpTestConnection.Bytes(10));
        c.Sent().Should().HaveCount(2);
    }

    [Fact]
    public void NoDelayFromTheStackOptionsAppliesToNewConnections()
    {
        using var h = new TcpHarness(o => o.NoDelay = true);
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(3000));
        c.Sent().Select(s => s.Payload.Length).Should().Equal(1380, 1380, 240);
    }

    [Fact]
    public void TheInitialCongestionWindowIsTenSegments()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(20_000));
        c.Sent().Should().HaveCount(10, "RFC 6928: min(10 MSS, max(2 MSS, 14600)) = 13800 bytes");
        c.Snapshot.Cwnd.Should().Be(13800);
    }

    [Fact]
    public void AShrunkWindowStopsNewData()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(6900));
        c.Sent().Should().HaveCount(5);
        c.AckUpTo(c.OurIss + 1 + 1380, window: 1380); // the right edge moves left, behind data in flight
        c.Write(TcpTestConnection.Bytes(1000));
        h.Silence("nothing may be sent beyond the peer's right edge");
        c.AckUpTo(window: 65535);
        c.Single().Payload.Should().HaveCount(1000);
    }

    [Fact]
    public void ASmallWindowIsNotFilledWithTinySegmentsUntilThePersistTimerOverrides()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.AckUpTo(window: 100);
        c.Write(TcpTestConnection.Bytes(3000));
        h.Silence("sender SWS avoidance: 100 bytes is less than half the largest window the peer offered");
        h.AdvanceMs(209);
        h.Silence();
        h.AdvanceMs(1);
        var segment = c.Single();
        segment.Payload.Should().HaveCount(100, "the override timer sends what fits");
    }

    [Fact]
    public void AZeroWindowIsProbedWithExponentialBackoffAndTheTransferResumesWhenItOpens()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.AckUpTo(window: 0);
        c.Write(TcpTestConnection.Bytes(1000));
        h.Silence();
        var probes = h.Run(TimeSpan.FromMilliseconds(3200), TimeSpan.FromMilliseconds(10));
        probes.Select(p => p.At.TotalMilliseconds).Should().Equal(210, 630, 1470, 3150);
        probes.Should().OnlyContain(p => p.Segment.Seq == c.OurIss && p.Segment.Payload.Length == 0 && p.Segment.Flags == TcpFlags.Ack,
            "a probe is an ACK with SEQ = SND.UNA - 1, which the peer must answer");
        c.AckUpTo(window: 0); // answered, still closed: probing continues
        c.AckUpTo(window: 65535);
        c.Single().Payload.Should().HaveCount(1000);
        c.Cb.State.Should().Be(TcpState.Established);
    }

    [Fact]
    public void AnAnsweredZeroWindowNeverTimesOutButAnUnansweredOneDoes()
    {
        using var h = new TcpHarness(o => o.UserTimeout = TimeSpan.FromSeconds(10));
        var c = h.EstablishPassive();
        c.AckUpTo(window: 0);
        c.Write(TcpTestConnection.Bytes(1000));
        for (int second = 0; second < 30; second++)
        {
            h.AdvanceMs(1000);
            if (c.Sent().Count > 0)
            {
                c.AckUpTo(window: 0);
            }
        }
        c.Cb.State.Should().Be(TcpState.Established, "the peer answers every probe (RFC 9293 §3.8.6.1)");
        h.Run(TimeSpan.FromSeconds(200), TimeSpan.FromMilliseconds(500));
        c.Cb.State.Should().Be(TcpState.Closed);
        c.Cb.Error.Should().Be(SocketError.TimedOut);
    }

    [Fact]
    public void TheRetransmissionTimeoutBacksOffExponentially()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Snapshot.Rto.Should().Be(210_000, "SRTT 10 ms, RTTVAR 5 ms: RTO = 10 + max(200, 20) ms");
        c.Write(TcpTestConnection.Bytes(100));
        var original = c.Single();
        var retransmissions = h.Run(TimeSpan.FromMilliseconds(3200), TimeSpan.FromMilliseconds(10));
        retransmissions.Select(r => r.At.TotalMilliseconds).Should().Equal(210, 630, 1470, 3150);
        retransmissions.Should().OnlyContain(r => r.Segment.Seq == original.Seq && r.Segment.Payload.SequenceEqual(original.Payload));
        h.Counters.TcpRetransmissions.Should().Be(4);
        c.Snapshot.Backoff.Should().Be(4);
        c.Snapshot.Cwnd.Should().Be(1380, "an RTO collapses cwnd to one segment");
    }

    [Fact]
    public void KarnsRuleTakesNoSampleFromARetransmittedSegment()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(100));
        c.Single();
        h.AdvanceMs(210);
        c.Single();
        h.AdvanceMs(300);
        c.AckUpTo();
        var snapshot = c.Snapshot;
        snapshot.Srtt.Should().Be(10_000, "the ACK may be for either copy: no sample (Karn)");
        snapshot.Backoff.Should().Be(0, "an ACK of new data resets the backoff");
        snapshot.Rto.Should().Be(210_000);
    }

    [Fact]
    public void RttSamplesUpdateSrttAndTheRto()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(100));
        c.Single();
        h.AdvanceMs(50);
        c.AckUpTo();
        var snapshot = c.Snapshot;
        snapshot.Srtt.Should().Be(15_000, "SRTT = 7/8 x 10 + 1/8 x 50 ms");
        snapshot.Rto.Should().Be(15_000 + 200_000, "RTTVAR = 3/4 x 5 + 1/4 x 40 = 13.75 ms; 4 x RTTVAR < 200 ms");
    }

    [Fact]
    public void UnacknowledgedDataAbortsTheConnectionAfterTheUserTimeout()
    {
        using var h = new TcpHarness(o => o.UserTimeout = TimeSpan.FromSeconds(2));
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(100));
        c.Single();
        var sent = h.Run(TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(10));
        sent.Select(s => s.At.TotalMilliseconds).Should().Equal(210, 630, 1470);
        c.Cb.State.Should().Be(TcpState.Closed);
        c.Cb.Error.Should().Be(SocketError.TimedOut);
        h.Layer.ConnectionCount.Should().Be(0);
        var act = () => c.Write([1]);
        act.Should().Throw<IOException>().WithInnerException<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.TimedOut);
    }

    [Fact]
    public void KeepaliveProbesAnIdlePeerAndGivesUpAfterTheConfiguredProbes()
    {
        using var h = new TcpHarness(o =>
        {
            o.KeepAliveIdle = TimeSpan.FromSeconds(10);
            o.KeepAliveInterval = TimeSpan.FromSeconds(1);
            o.KeepAliveProbes = 3;
        });
        var c = h.EstablishPassive();
        var probes = h.Run(TimeSpan.FromSeconds(14), TimeSpan.FromMilliseconds(100));
        probes.Select(p => Math.Round(p.At.TotalSeconds, 1)).Should().Equal(10, 11, 12);
        probes.Should().OnlyContain(p => p.Segment.Seq == c.OurIss && p.Segment.Payload.Length == 0);
        c.Cb.State.Should().Be(TcpState.Closed);
        c.Cb.Error.Should().Be(SocketError.TimedOut);
    }

    [Fact]
    public void AnAnsweredKeepaliveKeepsTheConnectionAndRestartsTheIdleTimer()
    {
        using var h = new TcpHarness(o =>
        {
            o.KeepAliveIdle = TimeSpan.FromSeconds(10);
            o.KeepAliveInterval = TimeSpan.FromSeconds(1);
            o.KeepAliveProbes = 3;
        });
        var c = h.EstablishPassive();
        h.Run(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100)).Should().ContainSingle();
        c.AckUpTo();
        var later = h.Run(TimeSpan.FromSeconds(10.5), TimeSpan.FromMilliseconds(100));
        later.Select(p => Math.Round(p.At.TotalSeconds, 1)).Should().Equal(10);
        c.Cb.State.Should().Be(TcpState.Established);
    }
}
