using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.Interop.Tests.WireGuard;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;
using MeshNet.TestSupport.Packets;
using Xunit.Abstractions;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// The <see cref="TcpTunnel"/> test bed without MeshNet's stack: the device's traffic goes through
/// the relay and the iptables loss, and every drop is accounted for. Proves the TCP interop
/// scaffolding before the stack lands.
/// </summary>
[Trait("Category", "WireGuardInterop")]
public sealed class TcpTunnelHarnessTests(ITestOutputHelper output)
{
    [InteropFact("iptables")]
    public async Task Device_traffic_crosses_the_relay_and_iptables_and_every_drop_is_counted()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ct = cts.Token;
        var inbox = new TunnelInbox();
        await using var tunnel = await TcpTunnel.StartAsync(new TcpTunnelOptions { UseRelay = true, InboundWithoutStack = inbox }, ct);
        var relay = tunnel.Relay!;
        relay.AToB.Forwarded.Should().BePositive("the handshake went through the relay");
        relay.BToA.Forwarded.Should().BePositive();
        relay.PeerA!.Port.Should().Be(tunnel.Device.ListenPort);
        relay.PeerB!.Port.Should().Be(tunnel.WireGuardGo.ListenPort);
        (await tunnel.WireGuardGo.GetPeerStatusAsync(tunnel.Device.PublicKey.ToBase64(), ct))!.Endpoint.Should().Be(relay.EndPointB.ToString());
        await PingAsync(tunnel, inbox, first: 1, count: 5, payload: 56, ct);

        // iptables drops everything to wireguard-go: 3 large and 2 small echo requests, counted by size.
        var before = await tunnel.ReadDropsAsync(ct);
        await using (var loss = await StatisticLoss.AddAsync(tunnel.Namespace, tunnel.WireGuardGo.ListenPort, 1.0, ct))
        {
            for (ushort sequence = 100; sequence < 105; sequence++)
            {
                tunnel.Outbound.WritePacket(IpPacketBuilder.EchoRequest(TcpTunnel.LocalV4, TcpTunnel.RemoteV4, 0x6874, sequence, new byte[sequence < 103 ? 400 : 16]));
            }
            await Poll.UntilAsync(async c => (await loss.ReadDroppedAsync(c)).Inbound >= 5, TimeSpan.FromSeconds(10), "iptables to drop the requests", ct);
            var dropped = await loss.ReadDroppedAsync(ct);
            output.WriteLine($"iptables: {dropped}");
            dropped.InboundLarge.Should().Be(3);
            dropped.Inbound.Should().Be(5, "nothing else went to wireguard-go meanwhile");
            dropped.Outbound.Should().Be(0);
        }
        await PingAsync(tunnel, inbox, first: 200, count: 3, payload: 56, ct);

        // The relay duplicates every datagram both ways: MeshNet's device drops the copies of the
        // replies as replays (and wireguard-go those of the requests), so each reply arrives once.
        relay.Impair(ImpairmentProfile.Duplicated(1.0), ImpairmentProfile.Duplicated(1.0));
        var relayBefore = relay.BToA.Snapshot();
        await PingAsync(tunnel, inbox, first: 300, count: 20, payload: 300, ct);
        var drops = (await tunnel.ReadDropsAsync(ct)).Minus(before);
        output.WriteLine($"drops: {drops}; relay {relay}");
        (relay.BToA.Snapshot().Duplicated - relayBefore.Duplicated).Should().BeGreaterThanOrEqualTo(20);
        drops.DeviceReplays.Should().BeGreaterThanOrEqualTo(20);
        drops.Unintended.Should().Be(0);
        inbox.Drain().Should().BeEmpty("no reply arrived twice");

        // Inner duplication reaches the kernel: two requests in, two replies out.
        tunnel.Outbound.Probability = 1.0;
        relay.Impair(ImpairmentProfile.None, ImpairmentProfile.None);
        tunnel.Outbound.WritePacket(IpPacketBuilder.EchoRequest(TcpTunnel.LocalV4, TcpTunnel.RemoteV4, 0x6874, 400, new byte[32]));
        for (int copy = 0; copy < 2; copy++)
        {
            await inbox.WaitForAsync(p => IpPacketBuilder.IsEchoReply(p, 0x6874, 400, out _), TimeSpan.FromSeconds(10), $"reply copy {copy + 1}");
        }
        tunnel.Outbound.Duplicated.Should().Be(1);
    }

    private static async Task PingAsync(TcpTunnel tunnel, TunnelInbox inbox, int first, int count, int payload, CancellationToken ct)
    {
        for (int i = 0; i < count; i++)
        {
            ushort sequence = (ushort)(first + i);
            tunnel.Outbound.WritePacket(IpPacketBuilder.EchoRequest(TcpTunnel.LocalV4, TcpTunnel.RemoteV4, 0x6874, sequence, new byte[payload]));
            await inbox.WaitForAsync(p => IpPacketBuilder.IsEchoReply(p, 0x6874, sequence, out int length) && length == payload,
                TimeSpan.FromSeconds(10), $"echo reply {sequence}");
            ct.ThrowIfCancellationRequested();
        }
    }
}
