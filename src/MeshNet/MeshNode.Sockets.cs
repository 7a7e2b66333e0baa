using System.Net;
using System.Net.Sockets;
using MeshNet.Netmap;
using MeshNet.Userspace.Stack;
using TcpListener = MeshNet.Userspace.Stack.TcpListener;

namespace MeshNet;

/// <summary>Listening, dialing and UDP on the tailnet.</summary>
public sealed partial class MeshNode
{
    private const int ListenBacklog = 128;

    /// <summary>
    /// Listens for TCP connections on <paramref name="port"/> of this node's tailnet addresses
    /// (every family the node has).
    /// </summary>
    /// <param name="port">The port; 0 picks a free one (the same on both families), see <see cref="MeshListener.Port"/>.</param>
    /// <param name="cancellationToken">Checked before listening.</param>
    /// <returns>The listener; the caller disposes it (disposing the node disposes it too).</returns>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: something already listens on that port.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not between 0 and 65535.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public ValueTask<MeshListener> ListenAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<MeshListener>(cancellationToken);
        }
        var stack = Stack;
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
            var meshListener = new MeshListener(this, [.. listeners], _logger);
            _listeners[meshListener] = 0;
            if (Volatile.Read(ref _disposed) != 0)
            {
                // Raced with DisposeAsync, which may not have seen it.
                _ = meshListener.DisposeAsync();
                ThrowIfDisposed();
            }
            return ValueTask.FromResult(meshListener);
        }
    }

    /// <summary>
    /// Opens a TCP connection to <paramref name="port"/> of the node <paramref name="host"/>
    /// names: its DNS label (<c>web</c>), its fully qualified name
    /// (<c>web.acme.meshnet.internal</c>) — both case-insensitive, a trailing dot allowed — or
    /// one of its tailnet addresses (an IPv4 or IPv6 literal). Names resolve against the
    /// current netmap, without DNS. A name dials the node's IPv4 address when it has one, else
    /// its IPv6 address; an address literal dials that address.
    /// </summary>
    /// <returns>The connection, with the peer's identity.</returns>
    /// <exception cref="MeshException">
    /// <see cref="MeshErrorCode.PeerNotFound"/> (no such node), <see cref="MeshErrorCode.PolicyDenied"/> (the
    /// tailnet policy does not allow this node to connect there), <see cref="MeshErrorCode.ConnectionRefused"/>
    /// (nothing listens there), <see cref="MeshErrorCode.TimedOut"/> (no answer),
    /// <see cref="MeshErrorCode.HostUnreachable"/> (the node's key expired, it has no address of
    /// that family, this node itself, or the network said so), <see cref="MeshErrorCode.ConnectionReset"/>.
    /// </exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public async ValueTask<MeshConnection> DialAsync(string host, int port, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var map = _netmap!;
        var node = NameResolver.Resolve(map, host, out var literal) ?? throw PeerNotFound(map, host);
        var address = NameResolver.SelectAddress(node, literal);
        return await DialNodeAsync(map, node, address, port, host, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens a TCP connection to a tailnet address and port (see <see cref="DialAsync(string, int, CancellationToken)"/>).</summary>
    /// <exception cref="MeshException">As <see cref="DialAsync(string, int, CancellationToken)"/>.</exception>
    public async ValueTask<MeshConnection> DialAsync(IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        ArgumentOutOfRangeException.ThrowIfLessThan(remoteEndPoint.Port, 1);
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
        var map = _netmap!;
        var address = remoteEndPoint.Address.IsIPv4MappedToIPv6 ? remoteEndPoint.Address.MapToIPv4() : remoteEndPoint.Address;
        var node = map.FindByAddress(address) ?? throw PeerNotFound(map, address.ToString());
        return await DialNodeAsync(map, node, address, remoteEndPoint.Port, address.ToString(), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<MeshConnection> DialNodeAsync(NetmapSnapshot map, NetmapNode node, IPAddress? address, int port, string host,
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
        var stack = Stack;
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

    /// <summary>
    /// Opens a UDP socket on <paramref name="port"/> of this node's tailnet addresses (both
    /// families). Use <see cref="FindPeer"/> to learn which node sent a datagram, and
    /// <see cref="ResolveAddresses"/> to address one by name.
    /// </summary>
    /// <param name="port">The port; 0 picks a free one.</param>
    /// <param name="cancellationToken">Checked before binding.</param>
    /// <returns>The socket; the caller disposes it (disposing the node closes it too).</returns>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.AddressInUse"/>: the port is taken.</exception>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public ValueTask<UdpSocket> ListenUdpAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<UdpSocket>(cancellationToken);
        }
        var stack = Stack;
        var any = stack.Addresses.Any(a => a.AddressFamily == AddressFamily.InterNetworkV6) ? IPAddress.IPv6Any : IPAddress.Any;
        try
        {
            return ValueTask.FromResult(stack.BindUdp(new IPEndPoint(any, port)));
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
