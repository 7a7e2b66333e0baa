using System.Net;
using System.Net.Sockets;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// The MeshNet WireGuard device against wireguard-go and the Linux kernel in a network
/// namespace: handshakes either way, pings, bulk UDP, roaming and cryptokey routing.
/// </summary>
[Trait("Category", "WireGuardInterop")]
public sealed class WireGuardInteropTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [InteropTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HandshakeInitiatedByMeshNet(bool outerIPv6)
    {
        await using var tunnel = await WireGuardTunnel.StartAsync(outerIPv6);
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1);

        tunnel.Device.Counters.HandshakeInitiationsSent.Should().Be(1);
        tunnel.Device.Counters.HandshakeResponsesSent.Should().Be(0);
        tunnel.Device.Counters.SessionsEstablished.Should().Be(1);
        var remote = await tunnel.RemoteViewAsync();
        remote.LatestHandshake.Should().NotBeNull("wg show records the handshake");
        remote.Endpoint.Should().Be(new IPEndPoint(tunnel.LocalOuterAddress, tunnel.Device.ListenPort).ToString());
        tunnel.Device.GetPeer(tunnel.RemoteKey)!.LastHandshake.Should().NotBeNull();
    }

    [InteropTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task HandshakeInitiatedByWireGuardGo(bool innerIPv6)
    {
        await using var tunnel = await WireGuardTunnel.StartAsync();
        tunnel.AnswerPings();

        // The namespace's own ping: wireguard-go starts the handshake, MeshNet answers it, and
        // the echo request is answered through the tunnel.
        await tunnel.Namespace.PingAsync(innerIPv6 ? WireGuardTunnel.LocalV6 : WireGuardTunnel.LocalV4, Timeout);

        tunnel.Device.Counters.HandshakeResponsesSent.Should().Be(1);
        tunnel.Device.Counters.HandshakeInitiationsSent.Should().Be(0);
        tunnel.Device.Counters.SessionsEstablished.Should().Be(1);
        (await tunnel.RemoteViewAsync()).LatestHandshake.Should().NotBeNull();
    }

    [InteropFact]
    public async Task InitiationsThatCrossWithWireGuardGoCompleteWithoutARetry()
    {
        // Everything wireguard-go sends spends 3 s in the relay (less than RekeyTimeout, so no retry
        // of its own comes meanwhile), so both initiations are in flight at once however slowly
        // this test gets to its own.
        await using var tunnel = await WireGuardTunnel.StartAsync(relay: ImpairmentProfile.None);
        var relay = tunnel.Relay!;
        relay.Impair(ImpairmentProfile.None, ImpairmentProfile.Delayed(TimeSpan.FromSeconds(3)));
        tunnel.AnswerPings();

        // wireguard-go initiates first (the namespace pings MeshNet); while its initiation is held
        // in the relay, MeshNet initiates too (it pings the namespace): the two cross.
        var namespacePing = tunnel.Namespace.TryPingAsync(WireGuardTunnel.LocalV4, TimeSpan.FromSeconds(20));
        await Poll.UntilAsync(() => relay.BToA.Received >= 1, Timeout, "wireguard-go's initiation at the relay");
        relay.BToA.Forwarded.Should().Be(0, "the set-up: MeshNet initiates while wireguard-go's initiation is still held");
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1, timeout: Timeout);
        (await namespacePing).Should().BeTrue("wireguard-go's own ping gets through on the session too");

        // wireguard-go answered MeshNet's initiation and dropped MeshNet's answer to its own (its
        // state had moved on); MeshNet had set its initiation aside and took wireguard-go's answer,
        // so no retry after RekeyTimeout was needed.
        var counters = tunnel.Device.Counters;
        counters.CrossedHandshakes.Should().Be(1, counters.ToString());
        counters.HandshakeInitiationsSent.Should().Be(1, "the first initiation completed: " + counters);
        counters.HandshakeResponsesSent.Should().Be(1);
        counters.TotalDropped.Should().Be(0, counters.ToString());
        (await tunnel.RemoteViewAsync()).LatestHandshake.Should().NotBeNull();
    }

    [InteropTheory]
    [InlineData(false, 56)]
    [InlineData(true, 56)]
    [InlineData(false, 1372)]
    [InlineData(true, 1352)]
    public async Task EchoRequestIsAnsweredByTheNamespaceKernel(bool ipv6, int payloadLength)
    {
        await using var tunnel = await WireGuardTunnel.StartAsync();
        for (ushort sequence = 1; sequence <= 5; sequence++)
        {
            await tunnel.PingRemoteAsync(ipv6, sequence, payloadLength);
        }
        tunnel.Device.Counters[WireGuardDropReason.DisallowedSourceAddress].Should().Be(0);
        tunnel.Device.Counters.TotalDropped.Should().Be(0, tunnel.Device.Counters.ToString());
    }

    [InteropFact]
    public async Task TenThousandUdpDatagramsEachWayArriveIntact()
    {
        const int count = 10_000;
        // At most this many datagrams in flight: wireguard-go 0.0.20220316 keeps the kernel's
        // default socket buffer (~208 KiB, about 60 datagrams of this size with their overhead),
        // so a larger burst would be dropped by the namespace's kernel before wireguard-go reads
        // it (counted as RcvbufErrors), which is not what this test is about.
        const int window = 32;
        await using var tunnel = await WireGuardTunnel.StartAsync();
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1);

        // MeshNet -> namespace: a real Linux UDP socket receives.
        using var receiver = tunnel.OpenNamespaceUdp(WireGuardTunnel.RemoteV4, 9000);
        NamespaceSockets.ForceReceiveBuffer(receiver, 8 << 20);
        var received = new bool[count];
        int receivedCount = 0;
        var receiveTask = Task.Run(async () =>
        {
            var buffer = new byte[2048];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            while (Volatile.Read(ref receivedCount) < count)
            {
                int length = await receiver.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                int sequence = UdpPayload.Verify(buffer.AsSpan(0, length));
                received[sequence].Should().BeFalse($"datagram {sequence} arrives once");
                received[sequence] = true;
                Interlocked.Increment(ref receivedCount);
            }
        });
        for (int sequence = 0; sequence < count; sequence++)
        {
            while (sequence - Volatile.Read(ref receivedCount) >= window && !receiveTask.IsCompleted)
            {
                await Task.Delay(1);
            }
            tunnel.Device.WritePacket(IpPacketBuilder.Udp(WireGuardTunnel.LocalV4, WireGuardTunnel.RemoteV4, 9001, 9000,
                UdpPayload.Create(sequence)));
        }
        try
        {
            await receiveTask.WaitAsync(TimeSpan.FromSeconds(120));
        }
        catch (Exception exception)
        {
            var udp = await tunnel.Namespace.ExecAsync("cat", ["/proc/net/snmp"]);
            var wg = await tunnel.RemoteViewAsync();
            throw new InvalidOperationException($"received {receivedCount}; device {tunnel.Device.Counters}; wg rx {wg.RxBytes} tx {wg.TxBytes}; {udp.StandardOutput}", exception);
        }
        received.Should().AllSatisfy(r => r.Should().BeTrue());

        // Namespace -> MeshNet: the kernel sends, the device delivers.
        using var sender = tunnel.OpenNamespaceUdp(WireGuardTunnel.RemoteV4, 9002);
        var target = new IPEndPoint(WireGuardTunnel.LocalV4, 9003);
        var seen = new bool[count];
        int seenCount = 0;
        var inboxTask = Task.Run(async () =>
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await foreach (var packet in tunnel.Inbox.ReadAllAsync(cts.Token))
            {
                if (IpPacketBuilder.TryParseUdp(packet, out var source, out _, out ushort sourcePort, out ushort port, out var payload) && port == 9003)
                {
                    source.Should().Be(WireGuardTunnel.RemoteV4);
                    sourcePort.Should().Be(9002);
                    int sequence = UdpPayload.Verify(payload);
                    seen[sequence].Should().BeFalse($"datagram {sequence} arrives once");
                    seen[sequence] = true;
                    if (Interlocked.Increment(ref seenCount) == count)
                    {
                        return;
                    }
                }
            }
        });
        for (int sequence = 0; sequence < count; sequence++)
        {
            while (sequence - Volatile.Read(ref seenCount) >= window && !inboxTask.IsCompleted)
            {
                await Task.Delay(1);
            }
            await sender.SendToAsync(UdpPayload.Create(sequence), SocketFlags.None, target);
        }
        await inboxTask.WaitAsync(TimeSpan.FromSeconds(120));
        seen.Should().AllSatisfy(s => s.Should().BeTrue());
        tunnel.Device.Counters.TotalDropped.Should().Be(0, tunnel.Device.Counters.ToString());
    }

    [InteropFact]
    public async Task RoamingToANewPortIsFollowedByWireGuardGo()
    {
        await using var tunnel = await WireGuardTunnel.StartAsync();
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1);
        ushort oldPort = tunnel.Device.ListenPort;

        ushort newPort = tunnel.Device.SetListenPort(0);
        newPort.Should().NotBe(oldPort);
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 2);
        await tunnel.PingRemoteAsync(ipv6: true, sequence: 3);

        var expected = new IPEndPoint(tunnel.LocalOuterAddress, newPort).ToString();
        await Poll.UntilAsync(async ct => (await tunnel.RemoteViewAsync(ct)).Endpoint == expected, Timeout,
            $"wg show to report the endpoint {expected}");
        tunnel.Device.Counters.SessionsEstablished.Should().Be(1, "roaming needs no new handshake");
    }

    [InteropFact]
    public async Task PacketWithASpoofedInnerSourceFromTheNamespaceIsNotDelivered()
    {
        await using var tunnel = await WireGuardTunnel.StartAsync();
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1);
        var spoofed = IPAddress.Parse("10.77.0.99");
        await tunnel.Namespace.IpAsync(["addr", "add", $"{spoofed}/32", "dev", "lo"]);

        using var liar = tunnel.OpenNamespaceUdp(spoofed, 9100);
        using var honest = tunnel.OpenNamespaceUdp(WireGuardTunnel.RemoteV4, 9101);
        var target = new IPEndPoint(WireGuardTunnel.LocalV4, 9102);
        await liar.SendToAsync(new byte[] { 1, 2, 3 }, SocketFlags.None, target);
        await Poll.UntilAsync(() => tunnel.Device.Counters[WireGuardDropReason.DisallowedSourceAddress] == 1, Timeout,
            "the spoofed packet to be dropped by cryptokey routing");
        await honest.SendToAsync(new byte[] { 4, 5, 6 }, SocketFlags.None, target);
        var delivered = await tunnel.Inbox.WaitForAsync(
            p => IpPacketBuilder.TryParseUdp(p, out _, out _, out _, out ushort port, out _) && port == 9102, Timeout, "the honest datagram");
        IpPacketBuilder.TryParseUdp(delivered, out var source, out _, out _, out _, out var payload).Should().BeTrue();
        source.Should().Be(WireGuardTunnel.RemoteV4);
        payload.Should().Equal(4, 5, 6);
        var fromSpoofed = tunnel.Inbox.Drain().Where(p => IpPacketBuilder.TryParseIp(p, out var s, out _, out _, out _) && s.Equals(spoofed));
        fromSpoofed.Should().BeEmpty();
    }
}
