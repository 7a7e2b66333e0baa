using System.Net;
using System.Net.Sockets;
using MeshNet.Interop.Tests.Relay;
using MeshNet.Interop.Tests.WireGuard;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;
using MeshNet.TestSupport.Packets;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>How <see cref="TcpTunnel.StartAsync"/> builds the test bed.</summary>
internal sealed record TcpTunnelOptions
{
    /// <summary>Put an <see cref="ImpairmentRelay"/> between the MeshNet device and wireguard-go (clean until <see cref="TcpTunnel.ImpairAsync"/>).</summary>
    public bool UseRelay { get; init; }

    /// <summary>The relay's seed.</summary>
    public int RelaySeed { get; init; } = 1;

    /// <summary>The tunnel MTU on both sides (stack and wireguard-go interface).</summary>
    public int Mtu { get; init; } = 1420;

    /// <summary>Adjusts the stack's TCP options (buffers, congestion control...).</summary>
    public Action<TcpStackOptions>? ConfigureTcp { get; init; }

    /// <summary>
    /// For harness self-tests: create no stack and deliver the device's inbound packets here
    /// (the stack's public API is not needed to check the topology itself).
    /// </summary>
    public IPacketSink? InboundWithoutStack { get; init; }
}

/// <summary>
/// The TCP interop test bed: MeshNet's <see cref="IpStack"/> behind a MeshNet
/// <see cref="WireGuardDevice"/> in the test process, tunnelled to wireguard-go and the Linux
/// kernel in a network namespace, optionally through an <see cref="ImpairmentRelay"/> and/or
/// iptables statistic loss (<see cref="ImpairAsync"/>). Inner packets pass an
/// <see cref="InnerDuplicator"/> each way between device and stack (a plain pass-through until
/// duplication is asked for).
/// <code>
///   test process                                             namespace
///   IpStack (10.77.0.1, fd77::1) ⇄ duplicators ⇄ WireGuardDevice           wireguard-go (10.77.0.2, fd77::2) + Linux TCP
///        UdpSocketBind ── [relay: A 127.0.0.1 | B veth A] ── veth B ── UDP :ListenPort
/// </code>
/// wireguard-go is tuned (<see cref="WireGuardGoTuning"/>) so the path itself drops nothing:
/// every drop is an impairment's, and <see cref="ReadDropsAsync"/> counts them all. Disposal
/// removes everything, also when the test failed.
/// </summary>
internal sealed class TcpTunnel : IAsyncDisposable
{
    public static readonly IPAddress LocalV4 = WireGuardTunnel.LocalV4;
    public static readonly IPAddress RemoteV4 = WireGuardTunnel.RemoteV4;
    public static readonly IPAddress LocalV6 = WireGuardTunnel.LocalV6;
    public static readonly IPAddress RemoteV6 = WireGuardTunnel.RemoteV6;

    private readonly List<IAsyncDisposable> _resources = [];
    private IpStack? _stack;

    private TcpTunnel(int seed)
    {
        Inbound = new InnerDuplicator(seed * 2 + 1);
        Outbound = new InnerDuplicator(seed * 2 + 2);
    }

    public NetworkNamespace Namespace { get; private set; } = null!;

    public VethPair Veth { get; private set; } = null!;

    public WireGuardGoPeer WireGuardGo { get; private set; } = null!;

    public WireGuardDevice Device { get; private set; } = null!;

    public IpStack Stack => _stack ?? throw new InvalidOperationException("This tunnel was started without a stack.");

    /// <summary>Device → stack: inner packets from Linux (duplicated for <see cref="InteropImpairment.Duplication"/>).</summary>
    public InnerDuplicator Inbound { get; }

    /// <summary>Stack → device: inner packets to Linux (duplicated for <see cref="InteropImpairment.Duplication"/>).</summary>
    public InnerDuplicator Outbound { get; }

    /// <summary>The relay (side A faces MeshNet, side B wireguard-go); null without <see cref="TcpTunnelOptions.UseRelay"/>.</summary>
    public ImpairmentRelay? Relay { get; private set; }

    /// <summary>The iptables loss of <see cref="InteropImpairment.RandomLoss"/>, once applied.</summary>
    public StatisticLoss? Loss { get; private set; }

    /// <summary>The stack's counters (retransmissions, drops).</summary>
    public IpStackCounters StackCounters => Stack.Counters;

    public static IPAddress Local(bool ipv6) => ipv6 ? LocalV6 : LocalV4;

    public static IPAddress Remote(bool ipv6) => ipv6 ? RemoteV6 : RemoteV4;

    /// <summary>Builds the test bed and completes the WireGuard handshake.</summary>
    public static async Task<TcpTunnel> StartAsync(TcpTunnelOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new TcpTunnelOptions();
        Prerequisites.Require("ip", "wg", "wireguard-go");
        var tunnel = new TcpTunnel(options.RelaySeed);
        try
        {
            tunnel.Namespace = await tunnel.AddAsync(NetworkNamespace.CreateAsync(cancellationToken));
            tunnel.Veth = await tunnel.AddAsync(VethPair.CreateAsync(tunnel.Namespace, cancellationToken));
            tunnel.WireGuardGo = await tunnel.AddAsync(WireGuardGoPeer.StartAsync(tunnel.Namespace, new WireGuardGoPeerOptions
            {
                Addresses = [$"{RemoteV4}/24", $"{RemoteV6}/64"],
                Mtu = options.Mtu,
            }, cancellationToken));
            await WireGuardGoTuning.ApplyAsync(tunnel.WireGuardGo, cancellationToken);
            if (Environment.GetEnvironmentVariable("MESHNET_TEST_PCAP") is { Length: > 0 } pcapDirectory)
            {
                // Diagnostics: the inner packets as Linux sees them, headers only, one file per tunnel.
                var file = Path.Combine(pcapDirectory, tunnel.WireGuardGo.InterfaceName + ".pcap");
                var capture = await tunnel.AddAsync(Task.FromResult(tunnel.Namespace.StartProcess("tcpdump", ["-i", tunnel.WireGuardGo.InterfaceName, "--immediate-mode", "-s", "120", "-U", "-w", file])));
                await Poll.UntilAsync(() => capture.Output.Contains("listening on", StringComparison.Ordinal) || capture.HasExited,
                    TimeSpan.FromSeconds(10), "tcpdump to start capturing", cancellationToken);
            }

            using (var key = WireGuardPrivateKey.Generate())
            {
                tunnel.Device = await tunnel.AddAsync(WireGuardDevice.StartAsync(new WireGuardDeviceOptions
                {
                    PrivateKey = key,
                    Bind = new UdpSocketBind(),
                    InboundSink = tunnel.Inbound,
                    Mtu = options.Mtu,
                }, cancellationToken).AsTask());
            }

            tunnel.Outbound.Target = tunnel.Device;
            if (options.InboundWithoutStack is { } sink)
            {
                tunnel.Inbound.Target = sink;
            }
            else
            {
                var tcp = new TcpStackOptions();
                options.ConfigureTcp?.Invoke(tcp);
                tunnel._stack = IpStack.Create(new IpStackOptions
                {
                    Link = tunnel.Outbound,
                    Addresses = [LocalV4, LocalV6],
                    Mtu = options.Mtu,
                    Tcp = tcp,
                });
                tunnel._resources.Add(tunnel._stack);
                tunnel.Inbound.Target = tunnel._stack;
            }

            var wireGuardGoEndpoint = new IPEndPoint(tunnel.Veth.B.IPv4, tunnel.WireGuardGo.ListenPort);
            var meshNetEndpoint = new IPEndPoint(tunnel.Veth.A.IPv4, tunnel.Device.ListenPort);
            if (options.UseRelay)
            {
                var relay = DeviceRelay.Start(tunnel.Veth, tunnel.Device.ListenPort, wireGuardGoEndpoint, options.RelaySeed);
                tunnel.Relay = relay;
                tunnel._resources.Add(new DisposeAction(relay.Dispose));
                wireGuardGoEndpoint = relay.EndPointA;
                meshNetEndpoint = relay.EndPointB;
            }

            // MeshNet first: it receives the first handshake message.
            var remoteKey = WireGuardPublicKey.Parse(tunnel.WireGuardGo.PublicKey);
            tunnel.Device.SetPeer(new WireGuardPeerConfig(remoteKey)
            {
                Endpoint = wireGuardGoEndpoint,
                AllowedIps = [new IPNetwork(RemoteV4, 32), new IPNetwork(RemoteV6, 128)],
            });
            await tunnel.WireGuardGo.SetPeerAsync(tunnel.Device.PublicKey.ToBase64(), meshNetEndpoint.ToString(),
                [$"{LocalV4}/32", $"{LocalV6}/128"], cancellationToken: cancellationToken);

            // Handshake without relying on the stack: an echo request written straight into the
            // device makes it initiate; the kernel's reply goes to the stack, which ignores it.
            tunnel.Device.WritePacket(IpPacketBuilder.EchoRequest(LocalV4, RemoteV4, 0x7463, 1, new byte[8]));
            await tunnel.WireGuardGo.WaitForHandshakeAsync(tunnel.Device.PublicKey.ToBase64(), timeout: TimeSpan.FromSeconds(20), cancellationToken: cancellationToken);
            return tunnel;
        }
        catch
        {
            await tunnel.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Applies <paramref name="impairment"/> from now on: relay profiles both ways, or (for
    /// <see cref="InteropImpairment.RandomLoss"/>) iptables statistic loss on wireguard-go's port.
    /// <see cref="InteropImpairment.Duplication"/> also duplicates inner packets both ways
    /// (<see cref="Inbound"/>, <see cref="Outbound"/>): WireGuard drops the relay's copies as replays.
    /// </summary>
    public async Task ImpairAsync(InteropImpairment impairment, CancellationToken cancellationToken = default)
    {
        if (impairment == InteropImpairment.Duplication)
        {
            Inbound.Probability = InteropImpairments.DuplicateProbability;
            Outbound.Probability = InteropImpairments.DuplicateProbability;
        }
        if (impairment == InteropImpairment.RandomLoss)
        {
            Loss ??= await AddAsync(StatisticLoss.AddAsync(Namespace, WireGuardGo.ListenPort, InteropImpairments.RandomLossProbability, cancellationToken));
            return;
        }
        if (InteropImpairments.NeedsRelay(impairment))
        {
            var relay = Relay ?? throw new InvalidOperationException($"{impairment} needs the relay: start the tunnel with {nameof(TcpTunnelOptions.UseRelay)}.");
            var profile = InteropImpairments.Profile(impairment);
            relay.Impair(profile, profile);
        }
    }

    /// <summary>Everything the path dropped so far, by direction and place.</summary>
    public async Task<PathDrops> ReadDropsAsync(CancellationToken cancellationToken = default)
    {
        var linux = await LinuxTcpCounters.ReadAsync(Namespace, cancellationToken);
        var tun = await WireGuardGoTuning.ReadInterfaceDropsAsync(WireGuardGo, cancellationToken);
        var iptables = Loss is null ? default : await Loss.ReadDroppedAsync(cancellationToken);
        return new PathDrops(
            RelayToLinux: Relay?.AToB.Dropped ?? 0,
            RelayToLinuxLarge: Relay?.AToB.DroppedLarge ?? 0,
            RelayFromLinux: Relay?.BToA.Dropped ?? 0,
            IptablesToLinux: iptables.Inbound,
            IptablesToLinuxLarge: iptables.InboundLarge,
            IptablesFromLinux: iptables.Outbound,
            LinuxSocket: linux["Udp.RcvbufErrors"] + linux["Udp6.RcvbufErrors"],
            LinuxTun: tun.Transmit + tun.Receive,
            Device: Device.Counters.TotalDropped - Device.Counters[WireGuardDropReason.ReplayedCounter],
            DeviceReplays: Device.Counters[WireGuardDropReason.ReplayedCounter]);
    }

    /// <summary>A listening Linux socket in the namespace at the remote tunnel address.</summary>
    public Socket ListenLinux(bool ipv6, int port, int? receiveBuffer = null) =>
        LinuxTcp.Listen(Namespace, new IPEndPoint(Remote(ipv6), port), receiveBuffer: receiveBuffer);

    /// <summary>A Linux socket in the namespace connected to MeshNet's address.</summary>
    public Task<Socket> ConnectLinuxAsync(bool ipv6, int port, CancellationToken cancellationToken = default) =>
        LinuxTcp.ConnectAsync(Namespace, new IPEndPoint(Local(ipv6), port), cancellationToken: cancellationToken);

    public Task<LinuxTcpCounters> ReadLinuxCountersAsync(CancellationToken cancellationToken = default) =>
        LinuxTcpCounters.ReadAsync(Namespace, cancellationToken);

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

    private async Task<T> AddAsync<T>(Task<T> creation) where T : IAsyncDisposable
    {
        var resource = await creation;
        _resources.Add(resource);
        return resource;
    }
}

/// <summary>What the path of a <see cref="TcpTunnel"/> dropped, by place; "to Linux" is MeshNet's sending direction.</summary>
internal sealed record PathDrops(
    long RelayToLinux,
    long RelayToLinuxLarge,
    long RelayFromLinux,
    long IptablesToLinux,
    long IptablesToLinuxLarge,
    long IptablesFromLinux,
    long LinuxSocket,
    long LinuxTun,
    long Device,
    long DeviceReplays)
{
    /// <summary>Datagrams from MeshNet dropped by an impairment.</summary>
    public long ToLinux => RelayToLinux + IptablesToLinux;

    /// <summary>
    /// Datagrams from MeshNet of at least <see cref="ImpairmentCounters.LargeDatagram"/> bytes
    /// dropped by an impairment: MeshNet's lost TCP data segments (keepalives and pure ACKs are smaller).
    /// </summary>
    public long ToLinuxLarge => RelayToLinuxLarge + IptablesToLinuxLarge;

    /// <summary>Datagrams from Linux dropped by an impairment.</summary>
    public long FromLinux => RelayFromLinux + IptablesFromLinux;

    /// <summary>Drops nobody asked for: Linux socket buffers, the TUN queue, the MeshNet device (replays of the relay's duplicates aside).</summary>
    public long Unintended => LinuxSocket + LinuxTun + Device;

    /// <summary>The difference <c>this - earlier</c>.</summary>
    public PathDrops Minus(PathDrops earlier) => new(
        RelayToLinux - earlier.RelayToLinux,
        RelayToLinuxLarge - earlier.RelayToLinuxLarge,
        RelayFromLinux - earlier.RelayFromLinux,
        IptablesToLinux - earlier.IptablesToLinux,
        IptablesToLinuxLarge - earlier.IptablesToLinuxLarge,
        IptablesFromLinux - earlier.IptablesFromLinux,
        LinuxSocket - earlier.LinuxSocket,
        LinuxTun - earlier.LinuxTun,
        Device - earlier.Device,
        DeviceReplays - earlier.DeviceReplays);

    public override string ToString() =>
        $"to Linux {ToLinux} (data {ToLinuxLarge}; relay {RelayToLinux}, iptables {IptablesToLinux}), from Linux {FromLinux} " +
        $"(relay {RelayFromLinux}, iptables {IptablesFromLinux}), unintended {Unintended} (Linux socket {LinuxSocket}, TUN {LinuxTun}, device {Device}); replayed duplicates dropped by the device {DeviceReplays}";
}
