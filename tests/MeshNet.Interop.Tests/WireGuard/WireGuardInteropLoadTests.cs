using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.TestSupport.Interop;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;
using NSec.Cryptography;

namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// Interop under stress: wireguard-go under a handshake flood (cookie path) and a rekey
/// forced by moving MeshNet's clock past RekeyAfterTime while traffic flows.
/// </summary>
[Trait("Category", "WireGuardInterop")]
[Collection(MeasurementCollection.Name)]
public sealed class WireGuardInteropLoadTests
{
    [InteropFact]
    public async Task UnderAnInitiationFloodMeshNetAnswersTheCookieReplyAndConnects()
    {
        await using var tunnel = await WireGuardTunnel.StartAsync();
        var initiations = CreateForeignInitiations(tunnel.RemoteKey, 256);

        // Flood wireguard-go from inside its namespace over loopback, so the flood's source
        // address differs from MeshNet's and the per-IP rate limit only hits the flood. The
        // flood comes in bursts of 400 every 20 ms: each burst puts more than 128 messages in
        // wireguard-go's handshake queue (so it stays under load), yet never fills the queue's
        // 1,024 slots (a full queue would drop MeshNet's initiation before any check).
        using var flooder = NamespaceSockets.Create(tunnel.Namespace, AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var target = new IPEndPoint(IPAddress.Loopback, tunnel.WireGuardGo.ListenPort);
        using var stop = new CancellationTokenSource();
        long flooded = 0;
        var flood = Task.Factory.StartNew(() =>
        {
            int next = 0;
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < 400; i++)
                {
                    flooder.SendTo(initiations[next], target);
                    next = (next + 1) % initiations.Count;
                }
                Interlocked.Add(ref flooded, 400);
                Thread.Sleep(20);
            }
        }, TaskCreationOptions.LongRunning);
        try
        {
            await Poll.UntilAsync(() => Interlocked.Read(ref flooded) > 4_000, TimeSpan.FromSeconds(30), "the flood to be under way");
            await tunnel.PingRemoteAsync(ipv6: false, sequence: 1, timeout: TimeSpan.FromSeconds(40));
        }
        finally
        {
            stop.Cancel();
            await flood;
        }

        var counters = tunnel.Device.Counters;
        counters.CookieRepliesAccepted.Should().BeGreaterThan(0, "wireguard-go under load answered with a cookie reply: " + counters);
        counters.HandshakeInitiationsSent.Should().BeGreaterThan(1, "the retry carried a mac2 made with the cookie");
        counters.SessionsEstablished.Should().Be(1);
        Interlocked.Read(ref flooded).Should().BeGreaterThan(128);
    }

    [InteropFact]
    public async Task MovingMeshNetsClockPastRekeyAfterTimeRekeysWithoutLosingTraffic()
    {
        var clock = new ShiftableTimeProvider();
        await using var tunnel = await WireGuardTunnel.StartAsync(time: clock);
        await tunnel.PingRemoteAsync(ipv6: false, sequence: 1);
        var firstHandshake = (await tunnel.RemoteViewAsync()).LatestHandshake;
        await Task.Delay(TimeSpan.FromSeconds(1.2)); // wg show reports handshakes in whole seconds

        using var receiver = tunnel.OpenNamespaceUdp(WireGuardTunnel.RemoteV4, 9200);
        NamespaceSockets.ForceReceiveBuffer(receiver, 8 << 20);
        const int count = 2000;
        var received = new bool[count];
        int receivedCount = 0;
        var receiveTask = Task.Run(async () =>
        {
            var buffer = new byte[2048];
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (Volatile.Read(ref receivedCount) < count)
            {
                int length = await receiver.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                received[UdpPayload.Verify(buffer.AsSpan(0, length))] = true;
                Interlocked.Increment(ref receivedCount);
            }
        });

        for (int sequence = 0; sequence < count; sequence++)
        {
            if (sequence == count / 2)
            {
                clock.Shift(WireGuardProtocol.RekeyAfterTime + TimeSpan.FromSeconds(1));
            }
            while (sequence - Volatile.Read(ref receivedCount) >= 64 && !receiveTask.IsCompleted)
            {
                await Task.Delay(1);
            }
            tunnel.Device.WritePacket(IpPacketBuilder.Udp(WireGuardTunnel.LocalV4, WireGuardTunnel.RemoteV4, 9201, 9200,
                UdpPayload.Create(sequence)));
        }
        await receiveTask.WaitAsync(TimeSpan.FromSeconds(60));
        received.Should().AllSatisfy(r => r.Should().BeTrue(), "no datagram is lost across the rekey");

        tunnel.Device.Counters.HandshakeInitiationsSent.Should().Be(2, "the session was older than RekeyAfterTime");
        tunnel.Device.Counters.SessionsEstablished.Should().Be(2);
        await Poll.UntilAsync(async ct => (await tunnel.RemoteViewAsync(ct)).LatestHandshake > firstHandshake,
            TimeSpan.FromSeconds(10), "wg show to record the new handshake");
        await tunnel.PingRemoteAsync(ipv6: true, sequence: 2);
        tunnel.Device.Counters.TotalDropped.Should().Be(0, tunnel.Device.Counters.ToString());
    }

    /// <summary>
    /// Genuine handshake initiations to <paramref name="responder"/> from random static keys
    /// it does not know (valid mac1, so wireguard-go must spend a DH on each).
    /// </summary>
    private static List<byte[]> CreateForeignInitiations(WireGuardPublicKey responder, int count)
    {
        var result = new List<byte[]>(count);
        using var macs = new CookieGenerator(responder, TimeProvider.System);
        for (int i = 0; i < count; i++)
        {
            using var stranger = Key.Create(KeyAgreementAlgorithm.X25519);
            using var ephemeral = Key.Create(KeyAgreementAlgorithm.X25519);
            using var state = new NoiseSymmetricState();
            state.InitializePrecomputed(NoiseHash.InitialChainingKey, NoiseHash.InitialHash);
            var staticStatic = new byte[32];
            NoiseSymmetricState.Dh(stranger, responder.AsSpan(), staticStatic).Should().BeTrue();
            var timestamp = new byte[Tai64N.Size];
            Tai64N.Write(DateTimeOffset.UtcNow, timestamp);
            var message = new byte[WireGuardProtocol.InitiationSize];
            BinaryPrimitives.WriteUInt32LittleEndian(message, WireGuardProtocol.MessageInitiation);
            BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), (uint)Random.Shared.Next());
            NoiseIkPsk2.WriteMessage1(state, responder.AsSpan(), ephemeral, stranger.PublicKey.Export(KeyBlobFormat.RawPublicKey),
                staticStatic, timestamp, message.AsSpan(WireGuardProtocol.InitiationNoiseOffset, WireGuardProtocol.InitiationNoiseSize))
                .Should().BeTrue();
            macs.AddMacs(message);
            result.Add(message);
        }
        return result;
    }
}
