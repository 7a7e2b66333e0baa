using System.Net;
using System.Net.Sockets;
using MeshNet.Interop.Tests.Relay;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Interop.Tests.WireGuard;

/// <summary>
/// A MeshNet WireGuard device in the test process, tunnelled to wireguard-go running in a
/// network namespace behind a veth pair: the interop test bed.
/// <code>
///   test process                         namespace
///   WireGuardDevice (10.77.0.1, fd77::1)  wireguard-go wg0 (10.77.0.2, fd77::2) + Linux kernel
///       UdpSocketBind  ── veth A ═════ veth B ──  UDP :ListenPort
/// </code>
/// With a relay profile, the datagrams pass through an <see cref="ImpairmentRelay"/> in the test
/// process (loopback to MeshNet, veth A to wireguard-go; outer IPv4 only).
/// Disposal removes the device, wireguard-go, the relay, the veth pair and the namespace, even
/// when the test failed.
/// </summary>
internal sealed class WireGuardTunnel : IAsyncDisposable
{
    public static readonly IPAddress LocalV4 = IPAddress.Parse("10.77.0.1");
    public static readonly IPAddress RemoteV4 = IPAddress.Parse("10.77.0.2");
    public static readonly IPAddress LocalV6 = IPAddress.Parse("fd77::1");
    public static readonly IPAddress RemoteV6 = IPAddress.Parse("fd77::2");

    private readonly List<IAsyncDisposable> _resources = [];

    private WireGuardTunnel()
    {
    }

    public NetworkNamespace Namespace { get; private set; } = null!;

    public VethPair Veth { get; private set; } = null!;

    public WireGuardGoPeer WireGuardGo { get; private set; } = null!;

    public WireGuardDevice Device { get; private set; } = null!;

    public TunnelInbox Inbox { get; } = new();

    public WireGuardPublicKey RemoteKey { get; private set; } = null!;

    /// <summary>Whether the outer (UDP) endpoints are IPv6.</summary>
    public bool OuterIPv6 { get; private set; }

    /// <summary>The address wireguard-go sees MeshNet's datagrams coming from.</summary>
    public IPAddress LocalOuterAddress => OuterIPv6 ? Veth.A.IPv6 : Veth.A.IPv4;

    public IPAddress RemoteOuterAddress => OuterIPv6 ? Veth.B.IPv6 : Veth.B.IPv4;

    /// <summary>The relay between the two (side A: MeshNet, side B: wireguard-go), when asked for.</summary>
    public ImpairmentRelay? Relay { get; private set; }

    public static async Task<WireGuardTunnel> StartAsync(bool outerIPv6 = false, TimeProvider? time = null,
        bool configureRemoteEndpoint = true, ImpairmentProfile? relay = null, CancellationToken cancellationToken = default)
    {
        Prerequisites.Require("ip", "wg", "wireguard-go");
        if (relay is not null && outerIPv6)
        {
            throw new ArgumentException("The relay is IPv4 only.", nameof(relay));
        }
        var tunnel = new WireGuardTunnel { OuterIPv6 = outerIPv6 };
        try
        {
            tunnel.Namespace = await NetworkNamespace.CreateAsync(cancellationToken);
            tunnel._resources.Add(tunnel.Namespace);
            tunnel.Veth = await VethPair.CreateAsync(tunnel.Namespace, cancellationToken);
            tunnel._resources.Add(tunnel.Veth);
            tunnel.WireGuardGo = await WireGuardGoPeer.StartAsync(tunnel.Namespace, new WireGuardGoPeerOptions
            {
                Addresses = [$"{RemoteV4}/24", $"{RemoteV6}/64"],
            }, cancellationToken);
            tunnel._resources.Add(tunnel.WireGuardGo);

            using var key = WireGuardPrivateKey.Generate();
            tunnel.Device = await WireGuardDevice.StartAsync(new WireGuardDeviceOptions
            {
                PrivateKey = key,
                Bind = new UdpSocketBind(),
                InboundSink = tunnel.Inbox,
                TimeProvider = time ?? TimeProvider.System,
            }, cancellationToken);
            tunnel._resources.Add(tunnel.Device);
            tunnel.RemoteKey = WireGuardPublicKey.Parse(tunnel.WireGuardGo.PublicKey);

            var wireGuardGoEndpoint = new IPEndPoint(tunnel.RemoteOuterAddress, tunnel.WireGuardGo.ListenPort);
            var meshNetEndpoint = new IPEndPoint(tunnel.LocalOuterAddress, tunnel.Device.ListenPort);
            if (relay is not null)
            {
                var started = DeviceRelay.Start(tunnel.Veth, tunnel.Device.ListenPort, wireGuardGoEndpoint, impairment: relay);
                tunnel.Relay = started;
                tunnel._resources.Add(new DisposeAction(started.Dispose));
                wireGuardGoEndpoint = started.EndPointA;
                meshNetEndpoint = started.EndPointB;
            }

            // The side that receives first is configured first (a handshake to an unknown key is lost).
            tunnel.Device.SetPeer(new WireGuardPeerConfig(tunnel.RemoteKey)
            {
                Endpoint = wireGuardGoEndpoint,
                AllowedIps = [new IPNetwork(RemoteV4, 32), new IPNetwork(RemoteV6, 128)],
            });
            await tunnel.WireGuardGo.SetPeerAsync(
                tunnel.Device.PublicKey.ToBase64(),
                configureRemoteEndpoint ? meshNetEndpoint.ToString() : null,
                [$"{LocalV4}/32", $"{LocalV6}/128"],
                cancellationToken: cancellationToken);
            return tunnel;
        }
        catch
        {
            await tunnel.DisposeAsync();
            throw;
        }
    }

    /// <summary>Answers ICMP echo requests addressed to MeshNet's tunnel addresses, as an IP stack would.</summary>
    public void AnswerPings() => Inbox.Responder = packet =>
    {
        if (IpPacketBuilder.TryParseEchoRequest(packet, out var source, out var destination, out ushort id, out ushort sequence, out var payload) &&
            (destination.Equals(LocalV4) || destination.Equals(LocalV6)))
        {
            Device.WritePacket(IpPacketBuilder.EchoReply(destination, source, id, sequence, payload));
        }
    };

    /// <summary>Sends an echo request from MeshNet to the namespace and waits for the kernel's reply.</summary>
    public async Task PingRemoteAsync(bool ipv6, ushort sequence, int payloadLength = 56, TimeSpan? timeout = null)
    {
        var payload = Enumerable.Range(0, payloadLength).Select(i => (byte)(i * 7 + sequence)).ToArray();
        var (source, destination) = ipv6 ? (LocalV6, RemoteV6) : (LocalV4, RemoteV4);
        Device.WritePacket(IpPacketBuilder.EchoRequest(source, destination, 0x4D4E, sequence, payload));
        await Inbox.WaitForAsync(p => IpPacketBuilder.IsEchoReply(p, 0x4D4E, sequence, out int length) && length == payloadLength,
            timeout ?? TimeSpan.FromSeconds(15), $"echo reply {sequence} ({(ipv6 ? "IPv6" : "IPv4")})");
    }

    /// <summary>A UDP socket inside the namespace, bound to <paramref name="address"/>:<paramref name="port"/>.</summary>
    public Socket OpenNamespaceUdp(IPAddress address, int port = 0)
    {
        var socket = NamespaceSockets.Create(Namespace, address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(address, port));
        return socket;
    }

    /// <summary>What <c>wg show</c> in the namespace reports for MeshNet.</summary>
    public async Task<WgShowPeer> RemoteViewAsync(CancellationToken cancellationToken = default) =>
        await WireGuardGo.GetPeerStatusAsync(Device.PublicKey.ToBase64(), cancellationToken)
        ?? throw new InvalidOperationException("wireguard-go does not list the MeshNet peer.");

    public async ValueTask DisposeAsync()
    {
        for (int i = _resources.Count - 1; i >= 0; i--)
        {
            try
            {
                await _resources[i].DisposeAsync();
            }
            catch (Exception)
            {
                // Keep tearing down the rest; the leftover sweeper reports anything missed.
            }
        }
        _resources.Clear();
    }
}
