using System.Net;
using System.Net.Sockets;
using MeshNet.Filter;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Logging;

namespace MeshNet.DataPlane;

/// <summary>
/// A node's data plane: a WireGuard device on a UDP socket, and the TCP/IP stack holding the
/// node's tailnet addresses, wired together (device → stack through <see cref="DeferredPacketSink"/>,
/// stack → device directly), the stack's inbound <see cref="PacketFilter"/> (the tailnet policy,
/// with connection tracking), plus the <see cref="PeerConfigurator"/> that keeps the device's
/// peers in line with the netmap. Built in two steps because the device must be bound before
/// registration (to fail fast on a taken port and to know the port) while the stack needs the
/// addresses that registration returns.
/// </summary>
internal sealed class NodeDataPlane : IAsyncDisposable
{
    /// <summary>The tunnel MTU of the device and the stack.</summary>
    public const int TunnelMtu = 1420;

    private readonly DeferredPacketSink _inbound;
    private readonly IPAddress? _bindAddress;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly ILogger _logger;
    private IpStack? _stack;
    private PeerConfigurator? _peers;
    private int _disposed;

    private NodeDataPlane(WireGuardDevice device, DeferredPacketSink inbound, IPAddress? bindAddress, TimeProvider time,
        ILoggerFactory? loggerFactory, ILogger logger)
    {
        Device = device;
        _inbound = inbound;
        _bindAddress = bindAddress;
        _time = time;
        _loggerFactory = loggerFactory;
        _logger = logger;
        Filter = new PacketFilter(time, logger);
    }

    public WireGuardDevice Device { get; }

    /// <summary>
    /// The packet filter the stack consults; it exists from the start (admitting everything
    /// until a netmap enforces a policy) so that netmaps can update it before the stack runs.
    /// </summary>
    public PacketFilter Filter { get; }

    /// <summary>The stack; null until <see cref="StartStack"/>.</summary>
    public IpStack? Stack => _stack;

    /// <summary>The peer configurator; null until <see cref="StartStack"/>.</summary>
    public PeerConfigurator? Peers => _peers;

    /// <summary>The socket's bound address (null: every address).</summary>
    public IPAddress? BindAddress => _bindAddress;

    /// <summary>Binds the WireGuard socket and starts the device (it has no peers and drops what it receives until the stack exists).</summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/> or <see cref="MeshErrorCode.InvalidConfiguration"/>: the socket cannot be bound.</exception>
    public static async Task<NodeDataPlane> StartDeviceAsync(WireGuardPrivateKey key, IPAddress? bindAddress, int port, TimeProvider time,
        ILoggerFactory? loggerFactory, ILogger logger, CancellationToken cancellationToken)
    {
        var inbound = new DeferredPacketSink();
        WireGuardDevice device;
        try
        {
            device = await WireGuardDevice.StartAsync(new WireGuardDeviceOptions
            {
                PrivateKey = key,
                Bind = new UdpSocketBind(new UdpSocketBindOptions
                {
                    BindAddress = bindAddress,
                    Logger = loggerFactory?.CreateLogger<UdpSocketBind>(),
                }),
                InboundSink = inbound,
                ListenPort = (ushort)port,
                Mtu = TunnelMtu,
                TimeProvider = time,
                LoggerFactory = loggerFactory,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            var code = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? MeshErrorCode.AddressInUse : MeshErrorCode.InvalidConfiguration;
            throw new MeshException(code, $"The WireGuard UDP socket cannot be bound to {bindAddress?.ToString() ?? "every address"} port {port}: {e.Message}", e);
        }
        return new NodeDataPlane(device, inbound, bindAddress, time, loggerFactory, logger);
    }

    /// <summary>Creates the stack with the node's addresses and connects it to the device.</summary>
    public IpStack StartStack(IReadOnlyList<IPAddress> addresses, TcpStackOptions? tcp = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_stack is not null)
        {
            throw new InvalidOperationException("The stack has already been started.");
        }
        var stack = IpStack.Create(new IpStackOptions
        {
            Link = Device,
            Addresses = addresses,
            Mtu = TunnelMtu,
            TimeProvider = _time,
            LoggerFactory = _loggerFactory,
            Tcp = tcp ?? new TcpStackOptions(),
            InboundFilter = Filter,
        });
        var bind = _bindAddress;
        _peers = new PeerConfigurator(new DevicePeerTarget(Device), _time, endpoint => LocalEndpoints.CanReach(bind, endpoint), _logger);
        _stack = stack;
        _inbound.Target = stack;
        return stack;
    }

    /// <summary>
    /// Stops everything in order: the peer timer, the stack (closing its listeners, connections
    /// and sockets; resets go out while the device still runs), then the device and its socket.
    /// Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _peers?.Dispose();
        try
        {
            _stack?.Dispose();
        }
        finally
        {
            _inbound.Target = null;
            Filter.Dispose();
            await Device.DisposeAsync().ConfigureAwait(false);
        }
    }
}
