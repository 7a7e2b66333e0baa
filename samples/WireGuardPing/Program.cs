// WireGuardPing: a MeshNet WireGuard device in this process pings a standard WireGuard peer
// (wireguard-go and the Linux kernel in a network namespace) through an encrypted tunnel.
// Needs root (for the namespace), wireguard-go, wireguard-tools and iproute2:
//   sudo dotnet run --project samples/WireGuardPing
using System.Diagnostics;
using System.Net;
using System.Threading.Channels;
using MeshNet.Samples.WireGuardPing;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Logging;

if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
{
    Console.Error.WriteLine("WireGuardPing creates a network namespace for its peer: run it as root on Linux.");
    return 2;
}

using var loggerFactory = LoggerFactory.Create(builder => builder.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Information));
var inbox = Channel.CreateUnbounded<byte[]>();
using var privateKey = WireGuardPrivateKey.Generate();
await using var peer = new PeerNamespace();
try
{
    await peer.StartAsync(privateKey.PublicKey.ToBase64());
    await using var device = await WireGuardDevice.StartAsync(new WireGuardDeviceOptions
    {
        PrivateKey = privateKey,
        Bind = new UdpSocketBind(),
        InboundSink = new ChannelSink(inbox.Writer),
        LoggerFactory = loggerFactory,
    });
    device.SetPeer(new WireGuardPeerConfig(WireGuardPublicKey.Parse(peer.PublicKey))
    {
        Endpoint = new IPEndPoint(PeerNamespace.OuterRemote, PeerNamespace.ListenPort),
        AllowedIps = [new IPNetwork(PeerNamespace.TunnelRemoteV4, 32), new IPNetwork(PeerNamespace.TunnelRemoteV6, 128)],
    });
    Console.WriteLine($"MeshNet device {device.PublicKey.ToShortString()} on UDP port {device.ListenPort}; peer wireguard-go {peer.PublicKey[..8]}…");

    int answered = 0;
    foreach (var (source, destination) in new[]
    {
        (PeerNamespace.TunnelLocalV4, PeerNamespace.TunnelRemoteV4),
        (PeerNamespace.TunnelLocalV6, PeerNamespace.TunnelRemoteV6),
    })
    {
        for (ushort sequence = 1; sequence <= 3; sequence++)
        {
            var payload = new byte[56];
            var clock = Stopwatch.StartNew();
            device.WritePacket(IcmpEcho.Request(source, destination, 0x4D4E, sequence, payload));
            if (await WaitForReplyAsync(inbox.Reader, sequence, TimeSpan.FromSeconds(10)))
            {
                answered++;
                Console.WriteLine($"64 bytes from {destination}: icmp_seq={sequence} time={clock.Elapsed.TotalMilliseconds:0.00} ms");
            }
            else
            {
                Console.WriteLine($"no reply from {destination} for icmp_seq={sequence}");
            }
        }
    }
    Console.WriteLine();
    Console.WriteLine($"device: {device.Counters}");
    Console.WriteLine((await peer.ShowAsync()).TrimEnd());
    return answered == 6 ? 0 : 1;
}
catch (Exception exception)
{
    Console.Error.WriteLine($"WireGuardPing failed: {exception.Message}");
    return 1;
}

static async Task<bool> WaitForReplyAsync(ChannelReader<byte[]> inbox, ushort sequence, TimeSpan timeout)
{
    using var cts = new CancellationTokenSource(timeout);
    try
    {
        while (true)
        {
            var packet = await inbox.ReadAsync(cts.Token);
            if (IcmpEcho.IsReply(packet, 0x4D4E, sequence))
            {
                return true;
            }
        }
    }
    catch (OperationCanceledException)
    {
        return false;
    }
}

/// <summary>Hands each decrypted packet to a channel.</summary>
internal sealed class ChannelSink(ChannelWriter<byte[]> writer) : IPacketSink
{
    public void WritePacket(ReadOnlySpan<byte> packet) => writer.TryWrite(packet.ToArray());
}
