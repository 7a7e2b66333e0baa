using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Closing: FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT, LAST-ACK; half-close; resets on close.</summary>
[Trait("Category", "Unit")]
public sealed class TcpCloseTests
{
    [Fact]
    public void ActiveCloseGoesThroughFinWaitAndTimeWait()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        var fin = c.Single();
        fin.Flags.Should().Be(TcpFlags.Fin | TcpFlags.Ack);
        fin.Seq.Should().Be(c.OurIss + 1);
        c.Cb.State.Should().Be(TcpState.FinWait1);
        c.AckUpTo();
        h.Silence();
        c.Cb.State.Should().Be(TcpState.FinWait2);
        c.SendFin();
        var ack = c.Single();
        ack.Ack.Should().Be(1002);
        ack.Seq.Should().Be(c.OurIss + 2);
        c.Cb.State.Should().Be(TcpState.TimeWait);
        c.Cb.TryRead(new byte[10]).Should().Be(0, "end of stream");
        h.Layer.ConnectionCount.Should().Be(1);
        h.AdvanceMs(59_999);
        c.Cb.State.Should().Be(TcpState.TimeWait);
        h.AdvanceMs(1);
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(0);
        h.Silence();
    }

    [Fact]
    public void TheFinRetransmitsUntilAcknowledged()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        var fin = c.Single();
        var retransmissions = h.Run(TimeSpan.FromMilliseconds(700), TimeSpan.FromMilliseconds(10));
        retransmissions.Select(r => r.At.TotalMilliseconds).Should().Equal(210, 630);
        retransmissions.Should().OnlyContain(r => r.Segment.Flags == (TcpFlags.Fin | TcpFlags.Ack) && r.Segment.Seq == fin.Seq);
    }

    [Fact]
    public void AZeroWindowHoldsTheFinBackUntilItOpens()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.AckUpTo(window: 0);
        c.Cb.ShutdownWrite();
        h.Silence("the FIN's sequence number does not fit a zero window");
        c.Cb.State.Should().Be(TcpState.FinWait1);
        h.AdvanceMs(210);
        c.Single().Should().Match<TcpTestSegment>(s => s.Flags == TcpFlags.Ack && s.Seq == c.OurIss, "a zero-window probe");
        c.AckUpTo(window: 1000);
        var fin = c.Single();
        fin.Flags.Should().Be(TcpFlags.Fin | TcpFlags.Ack);
        fin.Seq.Should().Be(c.OurIss + 1);
    }

    [Fact]
    public void TheFinRidesOnTheLastDataSegment()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(10));
        c.Single();
        c.Write(TcpTestConnection.Bytes(10));
        c.Cb.ShutdownWrite();
        var last = c.Single();
        last.Payload.Should().HaveCount(10, "Nagle is off once the application closes");
        last.Flags.Should().Be(TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin);
    }

    [Fact]
    public void AHalfClosedConnectionStillReceivesAndFinWait2DoesNotTimeOutWhileTheApplicationReads()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.AckUpTo();
        h.AdvanceMs(120_000);
        c.Cb.State.Should().Be(TcpState.FinWait2, "the FIN-WAIT-2 timeout applies only once the application closed (as in Linux)");
        c.SendData(TcpTestConnection.Bytes(100));
        c.Read().Should().HaveCount(100);
        var act = () => c.Write([1]);
        act.Should().Throw<IOException>();
    }

    [Fact]
    public void FinWait2TimesOutOnceTheApplicationClosed()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.Close();
        c.Single().Flags.Should().Be(TcpFlags.Fin | TcpFlags.Ack);
        c.AckUpTo();
        c.Cb.State.Should().Be(TcpState.FinWait2);
        h.AdvanceMs(59_999);
        c.Cb.State.Should().Be(TcpState.FinWait2);
        h.AdvanceMs(1);
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Silence("the timeout closes silently");
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void NewDataForAClosedApplicationIsAnsweredWithRst()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.Close();
        c.Single();
        c.AckUpTo();
        c.SendData(TcpTestConnection.Bytes(10));
        var rst = c.Single();
        rst.Flags.Should().Be(TcpFlags.Rst | TcpFlags.Ack);
        rst.Seq.Should().Be(c.OurIss + 2);
        c.Cb.State.Should().Be(TcpState.Closed);
    }

    [Fact]
    public void ClosingWithUnreadDataSendsRst()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(10));
        c.Cb.Close();
        var rst = c.Single();
        rst.Flags.Should().Be(TcpFlags.Rst | TcpFlags.Ack);
        rst.Seq.Should().Be(c.OurIss + 1);
        rst.Ack.Should().Be(1011);
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(0);
        h.Context.Budget.Used.Should().Be(0);
    }

    [Fact]
    public void AbortSendsRstAndFailsLaterOperations()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(10));
        c.Single();
        c.Cb.Abort();
        c.Single().Flags.Should().Be(TcpFlags.Rst | TcpFlags.Ack);
        var act = () => c.Read();
        act.Should().Throw<IOException>().WithInnerException<System.Net.Sockets.SocketException>()
            .Which.SocketErrorCode.Should().Be(System.Net.Sockets.SocketError.OperationAborted);
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void PassiveCloseAcksTheFinAtOnceThenLastAck()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(10));
        c.SendFin();
        var ack = c.Single();
        ack.Ack.Should().Be(1012, "a FIN is acknowledged at once");
        c.Cb.State.Should().Be(TcpState.CloseWait);
        c.Read().Should().HaveCount(10);
        c.Cb.TryRead(new byte[10]).Should().Be(0, "end of stream");

        c.Write(TcpTestConnection.Bytes(5));
        var data = c.Single();
        data.Payload.Should().HaveCount(5, "CLOSE-WAIT may still send");
        c.AckUpTo();
        h.Silence("the ACK of our data in CLOSE-WAIT needs no answer");

        c.Cb.ShutdownWrite();
        c.Single().Flags.Should().Be(TcpFlags.Fin | TcpFlags.Ack);
        c.Cb.State.Should().Be(TcpState.LastAck);
        c.AckUpTo();
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void SimultaneousCloseGoesThroughClosing()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        var fin = c.Single();
        c.Inject(c.Seg(TcpFlags.Fin | TcpFlags.Ack, ack: fin.Seq)); // the peer's FIN, not acknowledging ours
        c.PeerSeq++;
        c.Single().Ack.Should().Be(1002);
        c.Cb.State.Should().Be(TcpState.Closing);
        c.AckUpTo();
        c.Cb.State.Should().Be(TcpState.TimeWait);
    }

    [Fact]
    public void AFinAcknowledgingOursGoesStraightToTimeWait()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.SendFin();
        c.Single();
        c.Cb.State.Should().Be(TcpState.TimeWait);
    }

    [Fact]
    public void AnOutOfOrderFinIsProcessedWhenTheGapFills()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Inject(c.Seg(TcpFlags.Ack | TcpFlags.Fin, TcpTestConnection.Bytes(100), seq: 1101));
        c.Single().Ack.Should().Be(1001);
        c.Cb.State.Should().Be(TcpState.Established);
        c.SendData(TcpTestConnection.Bytes(100));
        c.Single().Ack.Should().Be(1202);
        c.Cb.State.Should().Be(TcpState.CloseWait);
        c.Read().Should().HaveCount(200);
    }

    [Fact]
    public void TimeWaitAcksARetransmittedFinAndRestartsItsTimer()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.SendFin();
        c.Single();
        h.AdvanceMs(30_000);
        c.Inject(c.Seg(TcpFlags.Fin | TcpFlags.Ack, seq: 1001));
        var ack = c.Single();
        ack.Ack.Should().Be(1002);
        h.AdvanceMs(59_000);
        c.Cb.State.Should().Be(TcpState.TimeWait, "2 MSL restarted with the retransmitted FIN");
        h.AdvanceMs(1_000);
        c.Cb.State.Should().Be(TcpState.Closed);
    }

    [Fact]
    public void AnExactRstEndsTimeWait()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.SendFin();
        c.Single();
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1002));
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Silence();
    }

    [Fact]
    public void ANewerSynReusesTheTupleOfATimeWaitConnection()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.SendFin();
        c.Single();
        c.Inject(c.Seg(TcpFlags.Syn, seq: 500));
        c.Single().Should().Match<TcpTestSegment>(s => s.Flags == TcpFlags.Ack && s.Ack == 1002, "an older SYN is answered with an ACK");
        c.Cb.State.Should().Be(TcpState.TimeWait);
        c.Inject(c.Seg(TcpFlags.Syn, seq: 90_000) with { Ack = 0 });
        var synAck = c.Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        synAck.Ack.Should().Be(90_001);
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.Find(c.Key)!.State.Should().Be(TcpState.SynReceived);
    }

    [Fact]
    public void AZeroTimeWaitDurationClosesAtOnce()
    {
        using var h = new TcpHarness(o => o.TimeWaitDuration = TimeSpan.Zero);
        var c = h.EstablishPassive();
        c.Cb.ShutdownWrite();
        c.Single();
        c.SendFin();
        c.Single();
        c.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void TimeWaitHoldsNoBuffers()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(5000));
        c.Sent();
        c.AckUpTo();
        c.Sent();
        c.Cb.Close();
        c.Sent();
        c.AckUpTo();
        c.SendFin();
        c.Cb.State.Should().Be(TcpState.TimeWait);
        h.Context.Budget.Used.Should().Be(0);
    }
}
