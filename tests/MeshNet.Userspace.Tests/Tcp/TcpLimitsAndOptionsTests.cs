using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Window scaling, auto-tuning, idle restart, connection limits, TIME-WAIT eviction, ephemeral ports, IPv6, disposal.</summary>
[Trait("Category", "Unit")]
public sealed class TcpLimitsAndOptionsTests
{
    [Fact]
    public void WindowsAreScaledBothWays()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive(new PeerOptions { WindowScale = 2 });
        c.Snapshot.SndWnd.Should().Be(65535 << 2);
        c.SendData(TcpTestConnection.Bytes(1380));
        h.AdvanceMs(40);
        var ack = c.Single();
        ((long)ack.Window << 7).Should().BeInRange(65536 - 1380 - 127, 65536, "our window is in units of 128 bytes");
        c.AckUpTo(window: 1035); // 4140 bytes = three segments
        c.Write(TcpTestConnection.Bytes(10_000));
        c.Sent().Select(s => s.Payload.Length).Should().Equal(1380, 1380, 1380);
    }

    [Fact]
    public void WithoutWindowScalingTheReceiveWindowStaysBelow64KiB()
    {
        using var h = new TcpHarness(o => o.InitialReceiveWindow = 256 * 1024);
        var c = h.EstablishPassive();
        c.Snapshot.ReceiveBuffer.Should().Be(65535);
        c.Snapshot.ReceiveScale.Should().Be(0);
    }

    [Fact]
    public void TheReceiveBufferAutoTunesTowardTheBandwidthDelayProduct()
    {
        var impairment = new LinkImpairment { Delay = TimeSpan.FromMilliseconds(25) };
        using var pair = new TcpPair(impairment, impairment);
        var (client, server) = pair.Connect();
        server.Snapshot().ReceiveBuffer.Should().Be(64 * 1024);
        var (sent, received, completed) = pair.Transfer(client, server, 32 << 20, TimeSpan.FromMinutes(5));
        completed.Should().BeTrue();
        received.Should().Equal(sent);
        server.Snapshot().ReceiveBuffer.Should().Be(4 << 20, "the reader keeps up, so the window grows to the maximum");
        pair.Time.GetUtcNow().Should().BeBefore(new DateTimeOffset(2025, 1, 1, 0, 0, 3, TimeSpan.Zero), "32 MiB over a 50 ms RTT with windows that grow");
    }

    [Fact]
    public void CwndSurvivesAnIdlePeriod()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.Write(TcpTestConnection.Bytes(100 * 1380));
        for (int round = 0; round < 3; round++)
        {
            foreach (var segment in c.Sent())
            {
                c.AckUpTo(segment.SeqEnd);
            }
        }
        while (c.Sent().Count > 0)
        {
            c.AckUpTo();
        }
        long cwnd = c.Snapshot.Cwnd;
        cwnd.Should().BeGreaterThan(40 * 1380);
        h.AdvanceMs(10_000);
        c.Write(TcpTestConnection.Bytes(100 * 1380));
        c.Sent().Should().HaveCount((int)Math.Min(cwnd / 1380, 65535 / 1380), "no restart to the initial window after idle (RFC 7661 spirit)");
    }

    [Fact]
    public void TheConnectionLimitRefusesNewConnections()
    {
        using var h = new TcpHarness(o => o.MaxConnections = 2);
        h.Listen();
        for (ushort port = 1; port <= 3; port++)
        {
            var c = new TcpTestConnection(h, TcpHarness.ListenPort, port, new PeerOptions());
            h.Inject(c.SynSegment());
        }
        h.Sent().Should().HaveCount(2);
        h.Counters[StackDropReason.TcpConnectionLimit].Should().Be(1);
        var act = () => h.Layer.Connect(null, new IPEndPoint(TcpHarness.RemoteAddress.ToIPAddress(), 9));
        act.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.TooManyOpenSockets);
    }

    [Fact]
    public void AFullTableEvictsTheOldestTimeWaitConnection()
    {
        using var h = new TcpHarness(o => o.MaxConnections = 2);
        var first = h.EstablishPassive();
        first.Cb.ShutdownWrite();
        first.Sent();
        first.SendFin();
        first.AckUpTo();
        h.Sent();
        first.Cb.State.Should().Be(TcpState.TimeWait);
        var second = new TcpTestConnection(h, TcpHarness.ListenPort, 2, new PeerOptions());
        h.Inject(second.SynSegment());
        var third = new TcpTestConnection(h, TcpHarness.ListenPort, 3, new PeerOptions());
        h.Inject(third.SynSegment());
        h.Sent().Should().HaveCount(2, "the TIME-WAIT entry made room");
        first.Cb.State.Should().Be(TcpState.Closed);
        h.Layer.ConnectionCount.Should().Be(2);
    }

    [Fact]
    public void EphemeralPortsAreDistinctAndExplicitPortsConflict()
    {
        using var h = new TcpHarness();
        var remote = new IPEndPoint(TcpHarness.RemoteAddress.ToIPAddress(), 443);
        var ports = Enumerable.Range(0, 200).Select(_ => h.Layer.Connect(null, remote).Key.LocalPort).ToList();
        ports.Should().OnlyHaveUniqueItems().And.OnlyContain(p => p >= 49152);
        var taken = new IPEndPoint(TcpHarness.LocalAddress.ToIPAddress(), ports[0]);
        var act = () => h.Layer.Connect(taken, remote);
        act.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.AddressAlreadyInUse);
        var otherRemote = new IPEndPoint(TcpHarness.RemoteAddress.ToIPAddress(), 444);
        h.Layer.Connect(taken, otherRemote).Key.LocalPort.Should().Be(ports[0], "the same local port may serve another 4-tuple");
        var foreign = () => h.Layer.Connect(new IPEndPoint(IPAddress.Parse("10.9.9.9"), 0), remote);
        foreign.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.AddressNotAvailable);
    }

    [Fact]
    public void Ipv6UsesTheLargerHeaderForTheMss()
    {
        var local = NetAddress.Parse("fd00::1");
        var remote = NetAddress.Parse("fd00::2");
        var time = new FakeTimeProvider();
        var output = new RecordingOutput(1420);
        var options = new IpStackOptions { Addresses = [local.ToIPAddress()], TimeProvider = time };
        var context = new StackContext(options, NullLogger.Instance) { Output = output };
        using var layer = new TcpLayer(context);
        using var listener = layer.Listen(new IPEndPoint(IPAddress.IPv6Any, 80), 4);
        var syn = new TcpTestSegment { SourcePort = 5555, DestinationPort = 80, Seq = 7, Flags = TcpFlags.Syn, Mss = 1440 }.Build(remote, local);
        layer.OnPacket(new IpPacketInfo(remote, local, 6, 64, 0, syn), syn);
        var sent = output.Drain().Single();
        sent.Destination.Should().Be(remote);
        var synAck = TcpTestSegment.Parse(sent.Source, sent.Destination, sent.Packet);
        synAck.Mss.Should().Be(1420 - 40 - 20);
        synAck.Ack.Should().Be(8);
        var v4Syn = new TcpTestSegment { SourcePort = 5555, DestinationPort = 80, Seq = 7, Flags = TcpFlags.Syn }.Build(TcpHarness.RemoteAddress, TcpHarness.LocalAddress);
        layer.OnPacket(new IpPacketInfo(TcpHarness.RemoteAddress, TcpHarness.LocalAddress, 6, 64, 0, v4Syn), v4Syn);
        TcpTestSegment.Parse(TcpHarness.LocalAddress, TcpHarness.RemoteAddress, output.Drain().Single().Packet).Flags
            .Should().Be(TcpFlags.Rst | TcpFlags.Ack, "an IPv6 wildcard listener does not take IPv4");
    }

    [Fact]
    public async Task DisposingTheLayerEndsEveryConnectionAndFreesItsMemory()
    {
        using var h = new TcpHarness();
        var c = h.EstablishPassive();
        c.SendData(TcpTestConnection.Bytes(100));
        c.Write(TcpTestConnection.Bytes(5000));
        h.Sent();
        var connection = new TcpConnection(c.Cb);
        var read = connection.ReadAsync(new byte[1000]);
        (await read).Should().Be(100);
        var pending = connection.ReadAsync(new byte[1000]);
        h.Layer.Dispose();
        h.Silence("the stack is going away: no more packets");
        var act = async () => await pending;
        (await act.Should().ThrowAsync<IOException>()).WithInnerException<SocketException>()
            .Which.SocketErrorCode.Should().Be(SocketError.OperationAborted);
        h.Layer.ConnectionCount.Should().Be(0);
        h.Context.Budget.Used.Should().Be(0);
        h.AdvanceMs(100_000);
        h.Silence("no timer survives");
    }
}
