using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MeshNet.Netmap;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging;
using TcpListener = MeshNet.Userspace.Stack.TcpListener;

namespace MeshNet.DataPlane;

/// <summary>
/// The sockets a node opens on its tailnet addresses: TCP listeners on every family the node
/// has (<see cref="Listen"/>), TCP connections to peers (<see cref="DialAsync"/>) and UDP sockets
/// (<see cref="BindUdp"/>), with the stack's socket errors turned into <see cref="MeshException"/>s.
/// Keeps the node's open <see cref="MeshListener"/>s, so that the node closes them when it stops.
/// </summary>
/// <remarks>
/// <para><b>Thread safety</b>: every member may be called from any thread, concurrently.</para>
/// <para><b>Ownership</b>: the listeners, connections and sockets belong to the caller once
/// returned; the node disposes the <see cref="Listeners"/> still open when it stops, and the
/// stack closes every connection and socket. A listener leaves <see cref="Listeners"/> when it
/// is disposed.</para>
/// <para><b>After the node is disposed</b>: the stack accessor throws
/// <see cref="ObjectDisposedException"/>, and so does every member that needs the stack.</para>
/// </remarks>
internal sealed class NodeSockets
{
    private const int ListenBacklog = 128;

    private readonly MeshNode _node;
    private readonly Func<IpStack> _stack;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<MeshListener, byte> _listeners = new();

    /// <param name="node">The node the listeners accept for (they look up the identity of whoever connects).</param>
    /// <param name="stack">The node's stack; throws <see cref="ObjectDisposedException"/> once the node is disposed.</param>
    /// <param name="time">The clock (key expiry).</param>
    /// <param name="logger">The node's log.</param>
    public NodeSockets(MeshNode node, Func<IpStack> stack, TimeProvider time, ILogger logger)
    {
        _node = node;
        _stack = stack;
        _time = time;
        _logger = logger;
    }

    /// <summary>The listeners open now (a live view).</summary>
    public ICollection<MeshListener> Listeners => _listeners.Keys;

    /// <summary>
    /// Listens on <paramref name="port"/> of every family the node has an address of (0: a free
    /// port, the same on both families) and keeps the listener in <see cref="Listeners"/>.
    /// </summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: something already listens on that port.</exception>
    public MeshListener Listen(int port)
    {
        var stack = _stack();
        var wildcards = Wildcards(stack);
        // With port 0 the first family picks the port; if the other family has it taken, try again.
        for (int attempt = 0; ; attempt++)
        {
            var listeners = new List<TcpListener>(wildcards.Length);
            try
            {
                foreach (var any in wildcards)
                {
                    int chosen = listeners.Count == 0 ? port : listeners[0].LocalEndPoint.Port;
                    listeners.Add(stack.ListenTcp(new IPEndPoint(any, chosen), ListenBacklog));
                }
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                foreach (var listener in listeners)
                {
                    listener.Dispose();
                }
                if (port == 0 && listeners.Count > 0 && attempt < 16)
                {
                    continue;
                }
                throw new MeshException(MeshErrorCode.AddressInUse, $"TCP port {port} is already in use on this node.", e);
            }
            var meshListener = new MeshListener(_node, this, [.. listeners], _logger);
            _listeners[meshListener] = 0;
            return meshListener;
        }
    }

    /// <summary>A listener was disposed: it leaves <see cref="Listeners"/>.</summary>
    public void OnListenerClosed(MeshListener listener) => _listeners.TryRemove(listener, out _);

    /// <summary>
    /// Opens a TCP connection to <paramref name="port"/> of <paramref name="node"/> at
    /// <paramref name="address"/> (<paramref name="host"/> is how the caller named it, for messages).
    /// </summary>
    /// <exception cref="MeshException">As <see cref="MeshNode.DialAsync(string, int, CancellationToken)"/>.</exception>
    public async ValueTask<MeshConnection> DialAsync(NetmapSnapshot map, NetmapNode node, IPAddress? address, int port, string host,
        CancellationToken cancellationToken)
    {
        if (node.Id == map.Self.Id)
        {
            throw new MeshException(MeshErrorCode.HostUnreachable, $"'{host}' is this node itself; a node cannot dial its own addresses.");
        }
        if (address is null)
        {
            throw new MeshException(MeshErrorCode.HostUnreachable, $"Node '{node.Name}' has no tailnet address.");
        }
        var stack = _stack();
        if (!stack.Addresses.Any(a => a.AddressFamily == address.AddressFamily))
        {
            throw new MeshException(MeshErrorCode.HostUnreachable, $"This node has no {(address.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address to reach {address} from.");
        }
        if (node.Key is null || node.IsExpired(_time.GetUtcNow()))
        {
            throw new MeshException(MeshErrorCode.HostUnreachable, $"Node '{node.Name}' cannot be reached: its key has expired (or is invalid).");
        }
        var remote = new IPEndPoint(address, port);
        TcpConnection tcp;
        try
        {
            tcp = await stack.ConnectTcpAsync(remote, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            var code = e.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => MeshErrorCode.ConnectionRefused,
                SocketError.TimedOut => MeshErrorCode.TimedOut,
                SocketError.ConnectionReset => MeshErrorCode.ConnectionReset,
                SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostDown => MeshErrorCode.HostUnreachable,
                SocketError.AccessDenied => MeshErrorCode.PolicyDenied,
                _ => MeshErrorCode.InternalError,
            };
            if (code == MeshErrorCode.PolicyDenied)
            {
                throw new MeshException(code, $"Connecting to {node.Name} ({remote}) failed: the tailnet policy does not allow this node to connect to {node.Name} port {port}.", e);
            }
            throw new MeshException(code, $"Connecting to {node.Name} ({remote}) failed: {Describe(e.SocketErrorCode)}.", e);
        }
        return new MeshConnection(tcp, MeshPeerIdentity.From(map, node));
    }

    /// <summary>Binds a UDP socket to <paramref name="port"/> of the node's addresses (both families when it has IPv6).</summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: the port is taken.</exception>
    public UdpSocket BindUdp(int port)
    {
        var stack = _stack();
        var any = stack.Addresses.Any(a => a.AddressFamily == AddressFamily.InterNetworkV6) ? IPAddress.IPv6Any : IPAddress.Any;
        try
        {
            return stack.BindUdp(new IPEndPoint(any, port));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new MeshException(MeshErrorCode.AddressInUse, $"UDP port {port} is already in use on this node.", e);
        }
    }

    /// <summary>The wildcard address of each family the node has an address of, IPv4 first.</summary>
    private static IPAddress[] Wildcards(IpStack stack)
    {
        bool v4 = stack.Addresses.Any(a => a.AddressFamily == AddressFamily.InterNetwork);
        bool v6 = stack.Addresses.Any(a => a.AddressFamily == AddressFamily.InterNetworkV6);
        return (v4, v6) switch
        {
            (true, true) => [IPAddress.Any, IPAddress.IPv6Any],
            (true, false) => [IPAddress.Any],
            _ => [IPAddress.IPv6Any],
        };
    }

    private static string Describe(SocketError error) => error switch
    {
        SocketError.ConnectionRefused => "the connection was refused (nothing listens on that port)",
        SocketError.TimedOut => "no answer in time",
        SocketError.ConnectionReset => "the connection was reset",
        SocketError.HostUnreachable or SocketError.HostDown => "the host is unreachable",
        SocketError.NetworkUnreachable => "the network is unreachable",
        SocketError.TooManyOpenSockets => "too many connections are open",
        _ => error.ToString(),
    };
}
