using System.Net.Sockets;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Tcp;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Three-way handshakes, passive and active, and option negotiation.</summary>
[Trait("Category", "Unit")]
public sealed class TcpHandshakeTests
{
    [Fact]
    public void PassiveOpenAnswersSynWithSynAckCarryingOurOptions()
    {
        using var h = new TcpHarness();
        h.Listen();
        var peer = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions { WindowScale = 7, Timestamps = true });
        h.Inject(peer.SynSegment());
        var synAck = h.Single();
        synAck.Flags.Should().Be(TcpFlags.Syn | TcpFlags.Ack);
        synAck.Ack.Should().Be(1001);
        synAck.Mss.Should().Be(1380, "1420-byte MTU minus 40 bytes of IPv4 and TCP headers");
        synAck.WindowScale.Should().Be(7, "4 MiB of receive buffer needs a shift of 7");
        synAck.SackPermitted.Should().BeTrue();
        synAck.Timestamps!.Value.Ecr.Should().Be(100);
        synAck.Window.Should().Be(65535, "the SYN-ACK's window is not scaled");
        h.Layer.Find(peer.Key)!.State.Should().Be(TcpState.SynReceived);
    }

    [Fact]
    public void SynAckOnlyRepeatsOptionsThePeerOffered()
    {
        using var h = new TcpHarness();
        h.Listen();
        var peer = new TcpTestConnection(h, TcpHarness.ListenPort, TcpHarness.PeerPort, new PeerOptions { Sack = false, Mss = null });
        h.Inject(peer.SynSegment());
        var synAck = h.Single();
        synAck.Mss.Should().Be(1380);
        synAck.WindowScale.Should().BeNull();
        synAck.SackPermitted.Should().BeFalse();
        synAck.Timestamps.Should().BeNull();
    }

    [Fact]
    public async Task HandshakeCompletesAndTheConnectionIsAccepted()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { WindowScale = 2, Timestamps = true });
        c.Listener!.PendingCount.Should().Be(1);
        var accept = c.Listener.AcceptAsync();
        accept.IsCompletedSuccessfully.Should().BeTrue();
        (await accept).RemoteEndPoint.Port.Should().Be(TcpHarness.PeerPort);
        var snapshot = c.Snapshot;
        snapshot.SendScale.Should().Be(2);
        snapshot.ReceiveScale.Should().Be(7);
        snapshot.Sack.Should().BeTrue();
        snapshot.Timestamps.Should().BeTrue();
        snapshot.Mss.Should().Be(1380 - 12, "the peer's 1460 is clamped to our path's 1380, minus the timestamp option");
    }

    [Fact]
    public void ActiveOpenSendsSynWithAllOptionsAndAcksTheSynAck()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        syn.Mss.Should().Be(1380);
        syn.WindowScale.Should().Be(7);
        syn.SackPermitted.Should().BeTrue();
        syn.Timestamps.Should().NotBeNull();
        syn.Window.Should().Be(65535);
        c.LocalPort.Should().BeInRange(49152, 65535);
        c.Inject(c.SynAckFor(syn));
        var ack = h.Single();
        ack.Flags.Should().Be(TcpFlags.Ack);
        ack.Seq.Should().Be(syn.Seq + 1);
        ack.Ack.Should().Be(1001);
        c.Cb.State.Should().Be(TcpState.Established);
        c.Snapshot.Timestamps.Should().BeFalse("the peer did not echo timestamps");
    }

    [Fact]
    public void IsnsAreUnpredictableAcrossConnections()
    {
        using var h = new TcpHarness();
        var first = h.StartActive(out _);
        var second = h.StartActive(out _);
        (second.Seq - first.Seq).Should().NotBe(0u);
    }

    [Fact]
    public async Task ConnectToClosedPortIsRefusedByRst()
    {
        using var h = new TcpHarness();
        var syn = h.StartActive(out var c);
        c.Inject(c.Seg(TcpFlags.Rst | TcpFlags.Ack, seq: 0, ack: syn.Seq + 1));
        c.Cb.State.Should().Be(TcpState.Closed);
        var act = async () => await c.Cb.WaitConnectedAsync(default);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.ConnectionRefused);
    }
}
