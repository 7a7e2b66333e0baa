using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Loss detection and recovery on one connection: RACK, RFC 6675 with PRR, NewReno, undo, tail loss probes.</summary>
[Trait("Category", "Unit")]
public sealed class TcpLossRecoveryTests
{
    private const int Mss = 1380;

    /// <summary>Sends <paramref name="count"/> full segments and returns them.</summary>
    private static List<TcpTestSegment> SendSegments(TcpTestConnection c, int count)
    {
        c.Write(TcpTestConnection.Bytes(count * Mss)).Should().Be(count * Mss);
        var sent = c.Sent();
        sent.Should().HaveCount(count);
        return sent;
    }

    private static (uint, uint) Range(TcpTestSegment first, TcpTestSegment last) => (first.Seq, last.SeqEnd);

    [Fact]
    public void ThreeSackedSegmentsAboveAHoleRetransmitItAtOnce()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[1]));
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[2]));
        h.Silence("RACK waits a quarter of the minimum RTT while fewer than three segments are SACKed");
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[3]));
        var retransmission = c.Single();
        retransmission.Seq.Should().Be(s[0].Seq);
        retransmission.Payload.Should().Equal(s[0].Payload);
        var snapshot = c.Snapshot;
        snapshot.CongestionState.Should().Be(CongestionState.Recovery);
        snapshot.SsThresh.Should().Be(9660, "CUBIC: 0.7 x 13800");
        c.AckUpTo(s[9].SeqEnd);
        snapshot = c.Snapshot;
        snapshot.CongestionState.Should().Be(CongestionState.Open);
        snapshot.Cwnd.Should().Be(9660, "recovery ends with cwnd = ssthresh");
        h.Counters.TcpRetransmissions.Should().Be(1);
    }

    [Fact]
    public void TheRackReorderingTimerMarksTheHoleLostAfterAQuarterRtt()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[1]));
        h.Silence();
        h.AdvanceMs(2);
        h.Silence("the reordering window (min RTT / 4 = 2.5 ms) has not passed");
        h.AdvanceMs(1);
        c.Single().Seq.Should().Be(s[0].Seq);
        c.Snapshot.CongestionState.Should().Be(CongestionState.Recovery);
    }

    [Fact]
    public void PrrPacesTheReductionAsRfc6937Computes()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        // Grow cwnd to 20 segments in slow start: ten segments acknowledged one by one while more data waits.
        c.Write(TcpTestConnection.Bytes(80 * Mss)).Should().Be(80 * Mss);
        var warm = c.Sent();
        warm.Should().HaveCount(10);
        h.AdvanceMs(10);
        var s = new List<TcpTestSegment>();
        foreach (var segment in warm)
        {
            c.AckUpTo(segment.SeqEnd);
            s.AddRange(c.Sent());
        }
        c.Snapshot.Cwnd.Should().Be(20 * Mss);
        s.Should().HaveCount(20, "each ACK released two segments");
        h.AdvanceMs(10);
        // Segment 0 of the twenty is lost; the peer SACKs 1..k. Model RFC 6675 (pipe) and RFC 6937
        // (PRR with the slow-start reduction bound) independently and compare segment counts per ACK.
        long cwnd = 20 * Mss;
        long ssthresh = (long)(cwnd * 0.7);
        long pipe = 20 * Mss;
        long flight = 20 * Mss;
        bool recovery = false;
        long recoverFs = 0;
        long prrDelivered = 0;
        long prrOut = 0;
        for (int k = 1; k < 20; k++)
        {
            c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[k]));
            var sent = c.Sent();
            pipe -= Mss;
            int expected;
            if (!recovery && k < 3)
            {
                expected = (int)((cwnd - pipe) / Mss); // pipe below cwnd: new data (limited transmit)
            }
            else
            {
                if (!recovery)
                {
                    recovery = true;
                    pipe -= Mss; // the hole is now deemed lost
                    recoverFs = flight;
                }
                prrDelivered += Mss;
                long sndcnt = pipe > ssthresh
                    ? (long)Math.Ceiling((double)prrDelivered * ssthresh / recoverFs) - prrOut
                    : Math.Min(ssthresh - pipe, Math.Max(prrDelivered - prrOut, Mss) + Mss);
                expected = (int)Math.Max(0, sndcnt / Mss);
                if (k == 3)
                {
                    expected = Math.Max(expected, 1); // the first retransmission goes regardless (RFC 6675 §5 step 4.3)
                }
            }
            sent.Should().HaveCount(expected, $"ACK {k}: pipe {pipe}, prr_delivered {prrDelivered}, prr_out {prrOut}");
            if (k == 3)
            {
                sent[0].Seq.Should().Be(s[0].Seq);
            }
            foreach (var segment in sent)
            {
                pipe += segment.Payload.Length;
                if (recovery)
                {
                    prrOut += segment.Payload.Length;
                }
                if (segment.Seq != s[0].Seq)
                {
                    flight += segment.Payload.Length;
                }
            }
        }
        c.Snapshot.CongestionState.Should().Be(CongestionState.Recovery);
        prrOut.Should().BeLessThanOrEqualTo(prrDelivered + Mss, "PRR never sends more than was delivered, plus one MSS");
    }

    [Fact]
    public void NewRenoWithoutSackFastRetransmitsOnThreeDuplicateAcksAndDeflatesOnPartialAndFullAcks()
    {
        using var h = new TcpHarness(o => o.CongestionControl = TcpCongestionControl.NewReno);
        var c = h.EstablishPassive(new PeerOptions { Sack = false });
        var s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq);
        c.AckUpTo(s[0].Seq);
        h.Silence();
        c.AckUpTo(s[0].Seq);
        c.Single().Seq.Should().Be(s[0].Seq, "three duplicate ACKs: fast retransmit");
        var snapshot = c.Snapshot;
        snapshot.SsThresh.Should().Be(6900, "max(FlightSize / 2, 2 MSS)");
        snapshot.Cwnd.Should().Be(6900 + (3 * Mss), "ssthresh + 3 MSS (RFC 6582 §3.2 step 2)");
        c.AckUpTo(s[0].Seq);
        c.Snapshot.Cwnd.Should().Be(6900 + (4 * Mss), "inflated by one MSS per further duplicate");
        h.Silence("nothing new to send");

        c.AckUpTo(s[5].Seq); // partial ACK: segment 5 was lost too
        c.Single().Seq.Should().Be(s[5].Seq, "a partial ACK retransmits the next hole at once");
        c.Snapshot.Cwnd.Should().Be(6900 + (4 * Mss) - (5 * Mss) + Mss, "deflated by the amount acknowledged, plus one MSS");

        c.AckUpTo(s[9].SeqEnd);
        snapshot = c.Snapshot;
        snapshot.CongestionState.Should().Be(CongestionState.Open);
        snapshot.Cwnd.Should().Be(2 * Mss, "full ACK: min(ssthresh, max(FlightSize, MSS) + MSS)");
    }

    [Fact]
    public void ADsackForTheRetransmissionUndoesTheReduction()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[3]));
        c.Single();
        c.Snapshot.SsThresh.Should().Be(9660);
        c.AckUpTo(s[9].SeqEnd); // the original arrived after all
        c.AckUpTo(s[9].SeqEnd, sacks: (s[0].Seq, s[0].SeqEnd)); // and the retransmission is reported as a duplicate
        var snapshot = c.Snapshot;
        snapshot.Cwnd.Should().Be(13800, "the reduction was undone");
        snapshot.SsThresh.Should().Be(CongestionControl.InfiniteSsThresh);
        snapshot.ReorderingSeen.Should().BeTrue();
        h.Counters.TcpSpuriousRetransmissions.Should().Be(1);
        h.Counters.TcpRetransmissions.Should().Be(1);
    }

    [Fact]
    public void ADsackForANetworkDuplicateIsNotTakenAsASpuriousRetransmission()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 3);
        h.AdvanceMs(10);
        c.AckUpTo(s[2].SeqEnd, sacks: (s[1].Seq, s[1].SeqEnd));
        h.Counters.TcpSpuriousRetransmissions.Should().Be(0);
        c.Snapshot.Cwnd.Should().Be(13800, "application-limited: the window does not grow (RFC 7661)");
    }

    [Fact]
    public void TimestampsRevealASpuriousTimeoutAndUndoIt()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { Timestamps = true });
        c.Write(TcpTestConnection.Bytes(100));
        var original = c.Single();
        h.AdvanceMs(210);
        var retransmission = c.Single();
        retransmission.Seq.Should().Be(original.Seq);
        retransmission.Timestamps!.Value.Val.Should().BeGreaterThan(original.Timestamps!.Value.Val);
        c.Snapshot.Cwnd.Should().Be(c.Snapshot.Mss);
        c.Inject(c.Seg(TcpFlags.Ack, ack: original.SeqEnd) with { Timestamps = (c.PeerTs, original.Timestamps.Value.Val) });
        var snapshot = c.Snapshot;
        snapshot.CongestionState.Should().Be(CongestionState.Open);
        snapshot.Cwnd.Should().Be(10 * snapshot.Mss, "Eifel: the ACK echoes the original's timestamp, so the timeout was spurious");
        h.Counters.TcpSpuriousRetransmissions.Should().Be(1);
    }

    [Fact]
    public void ATailLossProbeResendsTheLastSegmentAfterTwoRtts()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 5);
        h.AdvanceMs(10);
        c.AckUpTo(s[3].Seq); // segments 3 and 4 are lost: no further ACK will come
        h.Silence();
        h.AdvanceMs(21);
        h.Silence();
        h.AdvanceMs(1);
        var probe = c.Single();
        probe.Seq.Should().Be(s[4].Seq, "PTO = 2 SRTT (+2 ms): the probe resends the last segment");
        h.AdvanceMs(10);
        c.AckUpTo(s[3].Seq, sacks: (s[4].Seq, s[4].SeqEnd));
        c.Single().Seq.Should().Be(s[3].Seq, "the probe's SACK exposes the hole; RACK repairs it without waiting for the RTO");
        c.AckUpTo(s[4].SeqEnd);
        c.Snapshot.CongestionState.Should().Be(CongestionState.Open);
    }

    [Fact]
    public void ATailLossProbeSendsNewDataWhenThereIsSome()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.AckUpTo(window: 4 * Mss);
        c.Write(TcpTestConnection.Bytes(5 * Mss));
        var s = c.Sent();
        s.Should().HaveCount(4, "the peer's window holds four");
        h.AdvanceMs(10);
        c.AckUpTo(s[0].SeqEnd, window: 4 * Mss); // one more segment fits, sent at once
        var next = c.Single();
        next.Seq.Should().Be(s[3].SeqEnd);
        h.AdvanceMs(22);
        var probe = c.Single();
        probe.Seq.Should().Be(next.Seq, "no new data left: the last segment is probed");
    }

    [Fact]
    public void DsacksTeachRackToTolerateReordering()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        // First round: segment 0 is delayed behind three others and deemed lost; the DSACK proves the retransmission spurious.
        var s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[3]));
        c.Single();
        h.AdvanceMs(1);
        c.AckUpTo(s[9].SeqEnd);
        c.AckUpTo(s[9].SeqEnd, sacks: (s[0].Seq, s[0].SeqEnd));
        c.Snapshot.ReoWndMult.Should().Be(2);
        c.Sent();

        // Second round, same reordering: now tolerated.
        h.AdvanceMs(10);
        s = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[3]));
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[5]));
        h.Silence("reordering was seen: the window is 2 x min RTT / 4 = 5 ms");
        h.AdvanceMs(3);
        c.AckUpTo(s[9].SeqEnd);
        h.AdvanceMs(20);
        h.Silence();
        h.Counters.TcpRetransmissions.Should().Be(1);
        c.Snapshot.CongestionState.Should().Be(CongestionState.Open);
    }

    [Fact]
    public void EachRoundWithASpuriousFastRetransmissionDoublesTheReorderingWindow()
    {
        // Reordering deeper than the window costs a spurious retransmission per event until the
        // window has grown enough; doubling (rather than RFC 8985's one step) gets there in log2
        // of the rounds. The window is still capped at SRTT.
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        int[] delaysMs = [0, 6, 11];
        int[] expectedMult = [2, 4, 8];
        for (int round = 0; round < delaysMs.Length; round++)
        {
            h.AdvanceMs(10);
            var s = SendSegments(c, 10);
            h.AdvanceMs(10);
            c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[3]));
            if (delaysMs[round] > 0)
            {
                h.Silence($"round {round}: inside the window of x{c.Snapshot.ReoWndMult}");
                h.AdvanceMs(delaysMs[round]);
            }
            c.Single().Seq.Should().Be(s[0].Seq, $"round {round}: segment 0, held back {delaysMs[round]} ms, is deemed lost");
            h.AdvanceMs(1);
            c.AckUpTo(s[9].SeqEnd);
            c.AckUpTo(s[9].SeqEnd, sacks: (s[0].Seq, s[0].SeqEnd));
            c.Snapshot.ReoWndMult.Should().Be(expectedMult[round]);
            c.Sent();
        }

        // x8 is 20 ms, capped at SRTT (about 10 ms): a 9 ms reordering is tolerated...
        h.AdvanceMs(10);
        var last = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(last[0].Seq, sacks: Range(last[1], last[3]));
        h.AdvanceMs(9);
        h.Silence("inside the window");
        c.AckUpTo(last[9].SeqEnd);
        h.AdvanceMs(30);
        h.Silence();
        h.Counters.TcpRetransmissions.Should().Be(3);

        // ...and a 13 ms one is not: without the cap the window would be 20 ms.
        c.Snapshot.Srtt.Should().BeLessThan(12_000, "the cap binds below x8 x min RTT / 4");
        h.AdvanceMs(10);
        last = SendSegments(c, 10);
        h.AdvanceMs(10);
        c.AckUpTo(last[0].Seq, sacks: Range(last[1], last[3]));
        h.AdvanceMs(13);
        c.Single().Seq.Should().Be(last[0].Seq, "past SRTT the hole is deemed lost, whatever the multiplier");
        h.Counters.TcpRetransmissions.Should().Be(4);
    }

    [Fact]
    public void AnAckForADelayedOriginalIsNotTakenAsItsRetransmissionsDelivery()
    {
        // RFC 8985 §6.2 step 2: an ACK whose timestamp echo predates a segment's retransmission
        // acknowledges the original, so RACK must not take the retransmission's send time as the
        // most recent delivery. Taking it marked everything sent before the retransmission lost
        // once the ACK came a min RTT after the retransmission (a queue behind the path), and each
        // such resend repeated it: thousands of spurious retransmissions under mere reordering.
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { Timestamps = true }); // min RTT 10 ms
        int mss = c.Snapshot.Mss;
        c.Write(TcpTestConnection.Bytes(10 * mss)).Should().Be(10 * mss);
        var s = c.Sent();
        s.Should().HaveCount(10);
        uint originalTs = s[0].Timestamps!.Value.Val;
        h.AdvanceMs(10);
        // Segment 0 is held back in the network; 1-3 overtake it: the DupThresh rule resends it at once.
        c.Inject(c.Seg(TcpFlags.Ack, ack: s[0].Seq, sacks: [Range(s[1], s[3])]) with { Timestamps = (c.PeerTs, originalTs) });
        var retransmission = c.Single();
        retransmission.Seq.Should().Be(s[0].Seq);
        retransmission.Timestamps!.Value.Val.Should().BeGreaterThan(originalTs);
        // The original arrives and is acknowledged 12 ms later (more than the min RTT after the
        // retransmission), echoing its own timestamp; segments 4-9 are still on their way.
        h.AdvanceMs(12);
        c.Inject(c.Seg(TcpFlags.Ack, ack: s[3].SeqEnd) with { Timestamps = (c.PeerTs, originalTs) });
        h.Silence("segments 4-9, sent before the retransmission, are not lost: nothing later than them was delivered");
        c.Snapshot.CongestionState.Should().Be(CongestionState.Open, "Eifel undid the spurious recovery");
        h.AdvanceMs(1);
        c.AckUpTo(s[9].SeqEnd);
        h.Run(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(1)).Should().BeEmpty();
        h.Counters.TcpRetransmissions.Should().Be(1);
        h.Counters.TcpSpuriousRetransmissions.Should().Be(1);
    }

    [Fact]
    public void DataSegmentsCarryingSackBlocksStayWithinTheMss()
    {
        // RFC 6691: options count against the MSS. A full-sized segment that also carries SACK
        // blocks (we hold out-of-order data from the peer) would exceed the path MTU and leave as
        // two IP fragments: two datagrams to lose, the small one not counted as data.
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { Timestamps = true });
        int mss = c.Snapshot.Mss;
        c.Inject(c.Seg(TcpFlags.Ack | TcpFlags.Psh, TcpTestConnection.Bytes(100), seq: c.PeerSeq + 100)); // a hole before it
        c.Single().Sacks.Should().HaveCount(1);
        c.Write(TcpTestConnection.Bytes(3 * mss)).Should().Be(3 * mss);
        var raw = h.Output.Drain();
        raw.Should().NotBeEmpty();
        raw.Should().OnlyContain(p => p.Packet.Length <= 1400, "segments fit the 1420-byte MTU");
        var sent = raw.Select(p => TcpTestSegment.Parse(p.Source, p.Destination, p.Packet)).ToList();
        sent.Should().OnlyContain(x => x.Sacks.Length == 1, "SACK information still rides on the data");
        sent.Should().OnlyContain(x => x.Payload.Length == mss - 12, "a SACK block with its kind, length and padding takes 12 bytes");
    }

    [Fact]
    public void AfterATimeoutLostSegmentsAreResentInSlowStart()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 6);
        h.AdvanceMs(22);
        c.Single().Seq.Should().Be(s[5].Seq, "the tail loss probe comes first, at 2 SRTT + 2 ms");
        h.AdvanceMs(209);
        h.Silence();
        h.AdvanceMs(1);
        c.Single().Seq.Should().Be(s[0].Seq, "then the RTO; cwnd is one segment after it");
        c.Snapshot.CongestionState.Should().Be(CongestionState.Loss);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].SeqEnd);
        c.Sent().Select(x => x.Seq).Should().Equal(s[1].Seq, s[2].Seq);
        c.AckUpTo(s[2].SeqEnd);
        c.Sent().Select(x => x.Seq).Should().Equal(s[3].Seq, s[4].Seq, s[5].Seq);
        c.AckUpTo(s[5].SeqEnd);
        c.Snapshot.CongestionState.Should().Be(CongestionState.Open);
    }

    [Fact]
    public void ARepeatedTimeoutForgetsSacksSoReneggedDataIsResent()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        var s = SendSegments(c, 3);
        h.AdvanceMs(10);
        c.AckUpTo(s[0].Seq, sacks: Range(s[1], s[2]));
        c.Sent(); // the hole is repaired at once...
        // ...but nothing is acknowledged again until after the second timeout, which forgets the SACKs.
        h.Run(TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(10)).Should().OnlyContain(r => r.Segment.Seq == s[0].Seq);
        c.Snapshot.Backoff.Should().Be(2);
        c.AckUpTo(s[0].SeqEnd); // the peer has segment 0 now, but discarded what it had SACKed
        c.Sent().Select(x => x.Seq).Should().Equal([s[1].Seq, s[2].Seq], "the reneged segments are resent");
    }
}
