using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>LISTEN: RFC 9293 §3.10.7.2, the accept backlog, the half-open queue and SYN cookies.</summary>
[Trait("Category", "Unit")]
public sealed class TcpListenStateTests
{
    private static TcpTestSegment Syn(ushort port, uint seq = 1000, bool timestamps = false, int? windowScale = null) => new()
    {
        SourcePort = port,
        DestinationPort = TcpHarness.ListenPort,
        Seq = seq,
        Flags = TcpFlags.Syn,
        Mss = 1460,
        SackPermitted = true,
        WindowScale = windowScale,
        Timestamps = timestamps ? (500u, 0u) : null,
    };

    [Fact]
    public void AckToAListenerIsAnsweredWithRst()
    {
        using var h = new TcpHarness();
        h.Listen();
        h.Inject(new TcpTestSegment { SourcePort = 1234, DestinationPort = TcpHarness.ListenPort, Seq = 1, Ack = 4242, Flags = TcpFlags.Ack });
        var rst = h.Single();
        rst.Flags.Should().Be(TcpFlags.Rst);
        rst.Seq.Should().Be(4242);
    }

    [Fact]
    public void SynAckToAListenerIsAnsweredWithRst()
    {
        using var h = new TcpHarness();
        h.Listen();
        h.Inject(new TcpTestSegment { SourcePort = 1234, DestinationPort = TcpHarness.ListenPort, Seq = 1, Ack = 99, Flags = TcpFlags.Syn | TcpFlags.Ack });
        h.Single().Should().Match<TcpTestSegment>(s => s.Flags == TcpFlags.Rst && s.Seq == 99);
    }

    [Fact]
    public void RstToAListenerIsIgnored()
    {
        using var h = new TcpHarness();
        h.Listen();
        h.Inject(new TcpTestSegment { SourcePort = 1234, DestinationPort = TcpHarness.ListenPort, Seq = 1, Flags = TcpFlags.Rst });
        h.Silence();
    }

    [Fact]
    public void ListeningTwiceOnAPortFailsAndDisposingFreesIt()
    {
        using var h = new TcpHarness();
        var listener = h.Listen();
        var act = () => h.Listen();
        act.Should().Throw<System.Net.Sockets.SocketException>().Which.SocketErrorCode.Should().Be(System.Net.Sockets.SocketError.AddressAlreadyInUse);
        listener.Dispose();
        using var again = h.Listen();
        again.LocalEndPoint.Port.Should().Be(TcpHarness.ListenPort);
    }

    [Fact]
    public void WhenTheAcceptQueueIsFullSynsAreDroppedUntilTheApplicationAccepts()
    {
        using var h = new TcpHarness();
        var listener = h.Listen(backlog: 2);
        for (ushort port = 1; port <= 2; port++)
        {
            var c = new TcpTestConnection(h, TcpHarness.ListenPort, port, new PeerOptions());
            h.Inject(c.SynSegment());
            c.OnSynAck(h.Single());
            h.Inject(c.Seg(TcpFlags.Ack));
        }
        h.Silence();
        listener.PendingCount.Should().Be(2);
        h.Inject(Syn(3));
        h.Silence("a SYN is dropped while the accept queue is full (the peer retries)");
        h.Counters[StackDropReason.TcpSynDropped].Should().Be(1);
        listener.AcceptAsync().AsTask().IsCompletedSuccessfully.Should().BeTrue();
        h.Inject(Syn(3));
        h.Single().Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
    }

    [Fact]
    public void AHandshakeAckArrivingWhileTheAcceptQueueIsFullIsDroppedAndTheSynAckRetransmittedLater()
    {
        using var h = new TcpHarness();
        var listener = h.Listen(backlog: 1);
        var first = new TcpTestConnection(h, TcpHarness.ListenPort, 1, new PeerOptions());
        var second = new TcpTestConnection(h, TcpHarness.ListenPort, 2, new PeerOptions());
        h.Inject(first.SynSegment());
        first.OnSynAck(h.Single());
        h.Inject(second.SynSegment());
        second.OnSynAck(h.Single());
        h.Inject(first.Seg(TcpFlags.Ack));
        h.Inject(second.Seg(TcpFlags.Ack));
        h.Silence();
        listener.PendingCount.Should().Be(1);
        h.Layer.Find(second.Key)!.State.Should().Be(TcpState.SynReceived);
        listener.AcceptAsync().AsTask().IsCompletedSuccessfully.Should().BeTrue();
        h.AdvanceMs(1000);
        var synAck = h.Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        h.Inject(second.Seg(TcpFlags.Ack));
        listener.PendingCount.Should().Be(1);
    }

    [Fact]
    public void BeyondTheHalfOpenLimitSynCookiesKeepNoStateAndStillComplete()
    {
        using var h = new TcpHarness(o => o.SynBacklog = 2);
        var listener = h.Listen();
        h.Inject(Syn(1));
        h.Inject(Syn(2));
        h.Sent().Should().HaveCount(2);
        h.Layer.ConnectionCount.Should().Be(2);

        var cookiePeer = new TcpTestConnection(h, TcpHarness.ListenPort, 3, new PeerOptions { Mss = 1400 });
        h.Inject(cookiePeer.SynSegment());
        var synAck = h.Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        synAck.Ack.Should().Be(1001);
        synAck.Mss.Should().Be(1380);
        synAck.WindowScale.Should().BeNull("without timestamps a cookie cannot carry the peer's window scale");
        synAck.SackPermitted.Should().BeFalse();
        h.Layer.ConnectionCount.Should().Be(2, "a cookie keeps no state");

        cookiePeer.OnSynAck(synAck);
        h.Inject(cookiePeer.Seg(TcpFlags.Ack));
        h.Silence();
        var cb = h.Layer.Find(cookiePeer.Key)!;
        cb.State.Should().Be(TcpState.Established);
        cb.Snapshot().Mss.Should().Be(1380, "the cookie encoded 1380 (the largest table value not above 1400)");
        listener.PendingCount.Should().Be(1);
    }

    [Fact]
    public void CookiesCarryWindowScaleAndSackInTheTimestamp()
    {
        using var h = new TcpHarness(o => o.SynBacklog = 1);
        h.Listen();
        h.Inject(Syn(1));
        h.Sent();
        var peer = new TcpTestConnection(h, TcpHarness.ListenPort, 7, new PeerOptions { Timestamps = true, WindowScale = 5 });
        h.Inject(peer.SynSegment());
        var synAck = h.Single();
        synAck.WindowScale.Should().Be(7);
        synAck.SackPermitted.Should().BeTrue();
        synAck.Timestamps!.Value.Ecr.Should().Be(100);
        peer.OnSynAck(synAck);
        h.Inject(peer.Seg(TcpFlags.Ack, TcpTestConnection.Bytes(10)));
        var cb = h.Layer.Find(peer.Key)!;
        var snapshot = cb.Snapshot();
        snapshot.State.Should().Be(TcpState.Established);
        snapshot.SendScale.Should().Be(5);
        snapshot.ReceiveScale.Should().Be(7);
        snapshot.Sack.Should().BeTrue();
        snapshot.Timestamps.Should().BeTrue();
        snapshot.ReceiveAvailable.Should().Be(10, "data on the cookie ACK is kept");
    }

    [Fact]
    public void AForgedCookieAckIsAnsweredWithRst()
    {
        using var h = new TcpHarness(o => o.SynBacklog = 1);
        h.Listen();
        h.Inject(Syn(1));
        h.Inject(Syn(2)); // a cookie was sent: cookie ACKs are now checked
        h.Sent();
        h.Inject(new TcpTestSegment { SourcePort = 3, DestinationPort = TcpHarness.ListenPort, Seq = 1001, Ack = 0x12345678, Flags = TcpFlags.Ack });
        h.Single().Should().Match<TcpTestSegment>(s => s.Flags == TcpFlags.Rst && s.Seq == 0x12345678);
        h.Layer.ConnectionCount.Should().Be(1);
    }

    [Fact]
    public void ASynFloodStaysBoundedByTheHalfOpenQueue()
    {
        using var h = new TcpHarness(o => o.SynBacklog = 64);
        h.Listen();
        for (int i = 0; i < 20_000; i++)
        {
            h.Inject(Syn((ushort)(1 + (i % 60000)), seq: (uint)i * 7919u), from: MeshNet.Userspace.Net.NetAddress.FromIPv4(0x0A000000u + 2u + (uint)(i / 60000)));
            if (i % 1000 == 0)
            {
                h.Output.Drain();
            }
        }
        h.Output.Drain();
        h.Layer.ConnectionCount.Should().Be(64);
        h.Context.Budget.Used.Should().Be(0, "half-open connections hold no buffers");
        h.Run(TimeSpan.FromSeconds(64), TimeSpan.FromMilliseconds(500));
        h.Layer.ConnectionCount.Should().Be(0, "unanswered half-open connections expire after their SYN-ACK retries");
    }

    [Fact]
    public async Task DisposingTheListenerResetsHalfOpenAndQueuedConnectionsButNotAcceptedOnes()
    {
        using var h = new TcpHarness();
        var listener = h.Listen();
        var accepted = new TcpTestConnection(h, TcpHarness.ListenPort, 1, new PeerOptions());
        h.Inject(accepted.SynSegment());
        accepted.OnSynAck(h.Single());
        h.Inject(accepted.Seg(TcpFlags.Ack));
        var connection = await listener.AcceptAsync();
        var queued = new TcpTestConnection(h, TcpHarness.ListenPort, 2, new PeerOptions());
        h.Inject(queued.SynSegment());
        queued.OnSynAck(h.Single());
        h.Inject(queued.Seg(TcpFlags.Ack));
        var halfOpen = new TcpTestConnection(h, TcpHarness.ListenPort, 3, new PeerOptions());
        h.Inject(halfOpen.SynSegment());
        h.Sent();

        listener.PendingCount.Should().Be(1);
        await listener.DisposeAsync();
        var resets = h.Sent();
        resets.Should().HaveCount(2).And.OnlyContain(s => (s.Flags & TcpFlags.Rst) != 0);
        resets.Select(s => s.DestinationPort).Should().BeEquivalentTo(new ushort[] { 2, 3 });
        connection.State.Should().Be(TcpState.Established);
        var act = async () => await listener.AcceptAsync();
        await act.Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task APendingAcceptFailsWhenTheListenerIsDisposed()
    {
        using var h = new TcpHarness();
        var listener = h.Listen();
        var pending = listener.AcceptAsync();
        pending.IsCompleted.Should().BeFalse();
        listener.Dispose();
        var act = async () => await pending;
        await act.Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task ACancelledAcceptThrowsOperationCanceledAndTheListenerStillWorks()
    {
        using var h = new TcpHarness();
        using var listener = h.Listen();
        using var cts = new CancellationTokenSource();
        var pending = listener.AcceptAsync(cts.Token);
        cts.Cancel();
        var act = async () => await pending;
        await act.Should().ThrowAsync<OperationCanceledException>();
        var c = new TcpTestConnection(h, TcpHarness.ListenPort, 5, new PeerOptions());
        h.Inject(c.SynSegment());
        c.OnSynAck(h.Single());
        h.Inject(c.Seg(TcpFlags.Ack));
        (await listener.AcceptAsync()).RemoteEndPoint.Port.Should().Be(5);
    }
}
