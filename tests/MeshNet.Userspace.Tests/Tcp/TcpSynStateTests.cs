using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>SYN-SENT and SYN-RECEIVED: retransmission, timeouts, resets, simultaneous open, ICMP errors.</summary>
[Trait("Category", "Unit")]
public sealed class TcpSynStateTests
{
    [Fact]
    public async Task SynSentRetransmitsWithBackoffThenTimesOut()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        var sent = h.Run(TimeSpan.FromSeconds(31), TimeSpan.FromMilliseconds(100));
        sent.Select(s => Math.Round(s.At.TotalSeconds, 1)).Should().Equal(1, 3, 7, 15);
        sent.Should().OnlyContain(s => s.Segment.Flags == TcpFlags.Syn && s.Segment.Seq == syn.Seq);
        c.Cb.State.Should().Be(TcpState.Closed);
        var act = async () => await c.Cb.WaitConnectedAsync(default);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.TimedOut);
        h.Layer.ConnectionCount.Should().Be(0);
    }

    [Fact]
    public void SynSentIgnoresRstWithoutAcceptableAck()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        c.Inject(c.Seg(TcpFlags.Rst, seq: 0, ack: 0));
        c.Inject(c.Seg(TcpFlags.Rst | TcpFlags.Ack, seq: 0, ack: syn.Seq + 5));
        h.Silence();
        c.Cb.State.Should().Be(TcpState.SynSent);
    }

    [Fact]
    public void SynSentAnswersAnUnacceptableAckWithRst()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        c.Inject(c.SynAckFor(syn) with { Ack = syn.Seq + 100 });
        var rst = c.Single();
        rst.Flags.Should().Be(TcpFlags.Rst);
        rst.Seq.Should().Be(syn.Seq + 100);
        c.Cb.State.Should().Be(TcpState.SynSent);
    }

    [Fact]
    public void SimultaneousOpenCompletesThroughSynReceived()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        c.Inject(c.SynSegment() with { Ack = 0 });
        var synAck = c.Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        synAck.Seq.Should().Be(syn.Seq);
        synAck.Ack.Should().Be(1001);
        c.Cb.State.Should().Be(TcpState.SynReceived);
        c.Inject(c.SynAckFor(syn) with { Seq = 1000 });
        c.Cb.State.Should().Be(TcpState.Established);
        h.Silence();
    }

    [Fact]
    public void SimultaneousOpenAlsoCompletesWithAPlainAck()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        c.Inject(c.SynSegment() with { Ack = 0 });
        c.Single();
        c.AckUpTo(syn.Seq + 1);
        c.Cb.State.Should().Be(TcpState.Established);
    }

    [Fact]
    public async Task IcmpPortUnreachableRefusesAConnect()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        h.Layer.OnIcmpError(IcmpErrorKind.PortUnreachable, 0, Quote(c.LocalPort, TcpHarness.ListenPort, syn.Seq));
        c.Cb.State.Should().Be(TcpState.Closed);
        var act = async () => await c.Cb.WaitConnectedAsync(default);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.ConnectionRefused);
    }

    [Fact]
    public async Task IcmpAdministrativelyProhibitedFailsAConnectWithAccessDenied()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        h.Layer.OnIcmpError(IcmpErrorKind.AdministrativelyProhibited, 0, Quote(c.LocalPort, TcpHarness.ListenPort, syn.Seq));
        c.Cb.State.Should().Be(TcpState.Closed);
        var act = async () => await c.Cb.WaitConnectedAsync(default);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AccessDenied);
    }

    [Fact]
    public void AnAdministrativelyProhibitedErrorDuringTheConnectionIsASoftError()
    {
        using var h = new TcpHarness(o => o.UserTimeout = TimeSpan.FromSeconds(1));
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(10));
        var data = c.Single();
        h.Layer.OnIcmpError(IcmpErrorKind.AdministrativelyProhibited, 0, Quote(TcpHarness.ListenPort, TcpHarness.PeerPort, data.Seq));
        c.Cb.State.Should().Be(TcpState.Established, "a soft error does not abort an established connection");
        h.Run(TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(50));
        c.Cb.Error.Should().Be(SocketError.AccessDenied);
    }

    [Fact]
    public void IcmpErrorsQuotingAnotherSequenceNumberAreIgnored()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        h.Layer.OnIcmpError(IcmpErrorKind.HostUnreachable, 0, Quote(c.LocalPort, TcpHarness.ListenPort, syn.Seq + 12345));
        c.Cb.State.Should().Be(TcpState.SynSent, "RFC 5927: only errors about data in flight are believed");
    }

    [Fact]
    public void AHostUnreachableDuringTheConnectionIsReportedWhenItTimesOut()
    {
        using var h = new TcpHarness(o => o.UserTimeout = TimeSpan.FromSeconds(1));
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(10));
        var data = c.Single();
        h.Layer.OnIcmpError(IcmpErrorKind.HostUnreachable, 0, Quote(TcpHarness.ListenPort, TcpHarness.PeerPort, data.Seq));
        c.Cb.State.Should().Be(TcpState.Established, "a soft error does not abort an established connection");
        h.Run(TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(50));
        c.Cb.Error.Should().Be(SocketError.HostUnreachable);
    }

    [Fact]
    public void PacketTooBigLowersTheMssAndResendsSmaller()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(1380));
        var data = c.Single();
        h.Layer.OnIcmpError(IcmpErrorKind.PacketTooBig, 1300, Quote(TcpHarness.ListenPort, TcpHarness.PeerPort, data.Seq));
        var resent = c.Sent();
        resent.Select(s => s.Payload.Length).Should().Equal([1260, 120], "the lost segment is resent in two smaller ones");
        c.Snapshot.Mss.Should().Be(1260);
    }

    [Fact]
    public void SynReceivedRetransmitsTheSynAckFiveTimesThenForgetsTheConnection()
    {
        using var h = new TcpHarness();
        var listener = h.Listen();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions());
        h.Inject(c.SynSegment());
        var synAck = h.Single();
        var sent = h.Run(TimeSpan.FromSeconds(64), TimeSpan.FromMilliseconds(100));
        sent.Select(s => Math.Round(s.At.TotalSeconds, 1)).Should().Equal(1, 3, 7, 15, 31);
        sent.Should().OnlyContain(s => s.Segment.Flags == (TcpFlags.Syn | TcpFlags.Ack) && s.Segment.Seq == synAck.Seq);
        h.Layer.ConnectionCount.Should().Be(0);
        listener.HalfOpenCount.Should().Be(0);
    }

    [Fact]
    public void SynReceivedAnswersARetransmittedSynWithTheSynAck()
    {
        using var h = new TcpHarness();
        h.Listen();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions());
        var syn = c.SynSegment();
        h.Inject(syn);
        var synAck = h.Single();
        h.Inject(syn);
        h.Single().Should().BeEquivalentTo(synAck);
    }

    [Fact]
    public void AnExactRstInSynReceivedDropsTheHalfOpenConnectionOnly()
    {
        using var h = new TcpHarness();
        var listener = h.Listen();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions());
        h.Inject(c.SynSegment());
        c.OnSynAck(h.Single());
        c.Inject(c.Seg(TcpFlags.Rst, seq: 1001));
        h.Silence();
        h.Layer.ConnectionCount.Should().Be(0);
        listener.HalfOpenCount.Should().Be(0);
        listener.PendingCount.Should().Be(0);
        h.Inject(c.SynSegment());
        h.Single().Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack, "the listener still listens");
    }

    [Fact]
    public void AnUnacceptableAckInSynReceivedIsAnsweredWithRst()
    {
        using var h = new TcpHarness();
        h.Listen();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions());
        h.Inject(c.SynSegment());
        c.OnSynAck(h.Single());
        c.Inject(c.Seg(TcpFlags.Ack, ack: c.OurIss + 50));
        var rst = c.Single();
        rst.Flags.Should().Be(TcpFlags.Rst);
        rst.Seq.Should().Be(c.OurIss + 50);
        h.Layer.Find(c.Key)!.State.Should().Be(TcpState.SynReceived);
    }

    [Fact]
    public void DataOnTheHandshakeAckIsKept()
    {
        using var h = new TcpHarness();
        h.Listen();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions());
        h.Inject(c.SynSegment());
        c.OnSynAck(h.Single());
        c.SendData(TcpTestConnection.Bytes(50));
        h.Layer.Find(c.Key)!.Snapshot().ReceiveAvailable.Should().Be(50);
    }

    /// <summary>An IPv4 packet of ours (as an ICMP error quotes it): header plus the first 8 bytes of TCP.</summary>
    private static byte[] Quote(ushort sourcePort, ushort destinationPort, uint seq)
    {
        var packet = new byte[28];
        packet[0] = 0x45;
        packet[9] = 6;
        TcpHarness.LocalAddress.WriteBytes(packet.AsSpan(12));
        TcpHarness.RemoteAddress.WriteBytes(packet.AsSpan(16));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), sourcePort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), destinationPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(24), seq);
        _ = NetAddress.FromIPv4(0);
        return packet;
    }
}
