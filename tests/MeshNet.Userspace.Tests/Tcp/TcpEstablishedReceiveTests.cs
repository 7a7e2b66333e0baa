using System.Net.Sockets;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>ESTABLISHED, receiving: ACK policy, out-of-order data and SACK, windows, and the RFC 5961 / RFC 7323 checks.</summary>
[Trait("Category", "Unit")]
public sealed class TcpEstablishedReceiveTests
{
    [Fact]
    public void InOrderDataIsAckedAfterTheDelayedAckTimeout()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(100));
        h.Silence("one small segment waits for the delayed ACK");
        h.AdvanceMs(39);
        h.Silence();
        h.AdvanceMs(1);
        var ack = c.Single();
        ack.Flags.Should().Be(TcpFlags.Ack);
        ack.Seq.Should().Be(c.OurIss + 1);
        ack.Ack.Should().Be(1101);
        ack.Window.Should().Be(65435);
        c.Read().Should().Equal(TcpTestConnection.Bytes(100));
        h.Silence("a 100-byte window increase is not worth an update (receiver SWS avoidance)");
    }

    [Fact]
    public void EverySecondFullSizedSegmentIsAckedAtOnce()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(1380));
        h.Silence();
        c.SendData(TcpTestConnection.Bytes(1380, 1));
        var ack = c.Single();
        ack.Ack.Should().Be(1001 + 2760);
        ack.Window.Should().Be(65535 - 2760);
    }

    [Fact]
    public void WithDelayedAckOffEverySegmentIsAcked()
    {
        using var h = new TcpHarness(o => o.DelayedAck = false);
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(10));
        c.Single().Ack.Should().Be(1011);
    }

    [Fact]
    public void QuickAckModeAcksTheFirstSegmentsAtOnce()
    {
        using var h = new TcpHarness(quickAcks: 2);
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(10));
        c.Single().Ack.Should().Be(1011);
        c.SendData(TcpTestConnection.Bytes(10));
        c.Single().Ack.Should().Be(1021);
        c.SendData(TcpTestConnection.Bytes(10));
        h.Silence("quick ACKs are used up");
    }

    [Fact]
    public void OutOfOrderDataIsAckedAtOnceWithASackBlockAndFillingTheHoleAcksEverything()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(1380, 1), seq: 1001 + 1380));
        var ack = c.Single();
        ack.Ack.Should().Be(1001);
        ack.Sacks.Should().Equal((1001u + 1380, 1001u + 2760));
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(1380, 3), seq: 1001 + 4140));
        ack = c.Single();
        ack.Sacks.Should().Equal([(1001u + 4140, 1001u + 5520), (1001u + 1380, 1001u + 2760)], "the newest block first (RFC 2018)");
        c.SendData(TcpTestConnection.Bytes(1380, 0));
        ack = c.Single();
        ack.Ack.Should().Be(1001 + 2760, "the gap closed");
        ack.Sacks.Should().Equal((1001u + 4140, 1001u + 5520));
        c.Read().Should().HaveCount(2760);
    }

    [Fact]
    public void ADuplicateSegmentIsReportedWithDsack()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(500));
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(500), seq: 1001));
        var ack = c.Single();
        ack.Ack.Should().Be(1501);
        ack.Sacks.Should().Equal((1001u, 1501u));
        h.Counters[StackDropReason.TcpOutOfWindow].Should().Be(1);
    }

    [Fact]
    public void APartialDuplicateIsTrimmedAndReported()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(500));
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(1000), seq: 1001));
        var ack = c.Single();
        ack.Ack.Should().Be(2001);
        ack.Sacks.Should().Equal((1001u, 1501u));
        c.Read().Should().HaveCount(1000);
    }

    [Fact]
    public void ASegmentBeyondTheWindowIsAnsweredWithAnAckAndNotStored()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(100), seq: 1001 + 70_000));
        var ack = c.Single();
        ack.Ack.Should().Be(1001);
        ack.Sacks.Should().BeEmpty();
        h.Counters[StackDropReason.TcpOutOfWindow].Should().Be(1);
        c.Snapshot.ReceiveAvailable.Should().Be(0);
    }

    [Fact]
    public void DataOverlappingTheRightEdgeIsTrimmedToTheWindow()
    {
        using var h = new TcpHarness(o => { o.InitialReceiveWindow = 4096; o.MaxReceiveBuffer = 4096; });
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack | TcpFlags.Psh, TcpTestConnection.Bytes(5000)));
        var ack = c.Single();
        ack.Ack.Should().Be(1001 + 4096);
        ack.Window.Should().Be(0);
        c.Read().Should().HaveCount(4096);
    }

    [Fact]
    public void OldPureAcksAreAnsweredAtMostOncePerHalfSecond()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack, seq: unchecked(1001u - 5000)));
        c.Single().Ack.Should().Be(1001);
        c.Inject(c.Seg(TcpFlags.Ack, seq: unchecked(1001u - 5000)));
        h.Silence("rate-limited (Linux tcp_invalid_ratelimit)");
        h.AdvanceMs(500);
        c.Inject(c.Seg(TcpFlags.Ack, seq: unchecked(1001u - 5000)));
        c.Single();
    }

    [Fact]
    public void AnExactRstResetsTheConnection()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(10));
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1011));
        h.Silence();
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(0);
        c.Read().Should().HaveCount(10, "data received before the reset can still be read");
        var act = () => c.Read();
        act.Should().Throw<IOException>().WithInnerException<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.ConnectionReset);
    }

    [Fact]
    public void AnInWindowButInexactRstGetsAChallengeAck()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1001 + 10));
        var ack = c.Single();
        ack.Flags.Should().Be(TcpFlags.Ack);
        ack.Seq.Should().Be(c.OurIss + 1);
        ack.Ack.Should().Be(1001);
        c.Cb.State.Should().Be(TcpState.Established);
        h.Counters[StackDropReason.TcpChallenged].Should().Be(1);
    }

    [Fact]
    public void AnOutOfWindowRstIsIgnored()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1001 + 100_000));
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1001u - 1));
        h.Silence();
        c.Cb.State.Should().Be(TcpState.Established);
    }

    [Fact]
    public void ASynInEstablishedGetsARateLimitedChallengeAck()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Syn, seq: 1001 + 50));
        c.Single().Should().Match<TcpTestSegment>(s => s.Flags == TcpFlags.Ack && s.Ack == 1001);
        c.Inject(c.Seg(TcpFlags.Syn, seq: 77));
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1001 + 9));
        h.Silence("at most one challenge ACK per 500 ms (RFC 5961 §7)");
        h.AdvanceMs(500);
        c.Inject(c.Seg(TcpFlags.Syn, seq: 77));
        c.Single().Ack.Should().Be(1001);
        c.Cb.State.Should().Be(TcpState.Established);
        h.Counters[StackDropReason.TcpChallenged].Should().Be(4, "three SYNs and one inexact RST");
    }

    [Fact]
    public void AnAckForDataNeverSentIsChallengedAndItsDataDropped()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(10), ack: c.OurIss + 1 + 5000));
        c.Single().Ack.Should().Be(1001);
        h.Counters[StackDropReason.TcpUnacceptableAck].Should().Be(1);
        c.Snapshot.ReceiveAvailable.Should().Be(0);
    }

    [Fact]
    public void ASegmentWithoutAckIsDropped()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Psh, TcpTestConnection.Bytes(10)));
        h.Silence();
        h.Counters[StackDropReason.TcpBadFlags].Should().Be(1);
    }

    [Fact]
    public void PawsDropsSegmentsWithOldTimestamps()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { Timestamps = true });
        c.PeerTs = 1000;
        c.SendData(TcpTestConnection.Bytes(10));
        h.AdvanceMs(40);
        c.Single();
        c.PeerTs = 998;
        c.Inject(c.Seg(TcpFlags.Ack | TcpFlags.Psh, TcpTestConnection.Bytes(10)));
        var ack = c.Single();
        ack.Ack.Should().Be(1011, "the segment was rejected");
        ack.Timestamps!.Value.Ecr.Should().Be(1000);
        h.Counters[StackDropReason.TcpPawsRejected].Should().Be(1);
        c.PeerTs = 999; // within one tick of TS.Recent: accepted (Linux's PAWS window)
        c.SendData(TcpTestConnection.Bytes(10));
        c.Snapshot.ReceiveAvailable.Should().Be(20);
    }

    [Fact]
    public void AnOriginalOvertakenByItsRetransmissionIsReportedWithADsackThoughPawsRejectsIt()
    {
        // The peer's segment was held back in the network; its retransmission (newer timestamp)
        // arrived first. The late original fails PAWS, but it is still a duplicate we must report
        // (RFC 2883, as Linux does), or the sender never learns its retransmission was spurious.
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { Timestamps = true });
        uint seq = c.PeerSeq;
        c.PeerTs = 1000;
        c.SendData(TcpTestConnection.Bytes(100)); // the retransmission
        h.AdvanceMs(40);
        c.Single().Ack.Should().Be(seq + 100);
        c.PeerTs = 996;
        c.Inject(c.Seg(TcpFlags.Ack | TcpFlags.Psh, TcpTestConnection.Bytes(100), seq: seq)); // the original, 4 ms older
        var ack = c.Single();
        h.Counters[StackDropReason.TcpPawsRejected].Should().Be(1);
        ack.Ack.Should().Be(seq + 100);
        ack.Sacks.Should().Equal([(seq, seq + 100)], "a D-SACK block for the duplicate");
    }

    [Fact]
    public void AZeroWindowIsAdvertisedWhenTheReaderStopsAndReopenedWhenItReads()
    {
        using var h = new TcpHarness(o => { o.InitialReceiveWindow = 4096; o.MaxReceiveBuffer = 4096; });
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(1380));
        c.SendData(TcpTestConnection.Bytes(1380));
        c.Single().Window.Should().Be(4096 - 2760);
        c.SendData(TcpTestConnection.Bytes(1336));
        h.AdvanceMs(40);
        var ack = c.Single();
        ack.Ack.Should().Be(1001 + 4096);
        ack.Window.Should().Be(0);

        c.SendData([42]); // a zero-window probe with one byte of new data
        ack = c.Single();
        ack.Ack.Should().Be(1001 + 4096, "the probe's byte does not fit");
        ack.Window.Should().Be(0);
        c.PeerSeq--;

        c.Read(100).Should().HaveCount(100);
        h.Silence("100 bytes of window are not worth announcing (receiver SWS avoidance)");
        c.Read();
        ack = c.Single();
        ack.Window.Should().Be(4096, "the reader drained the buffer: the window reopens at once");
    }
}
