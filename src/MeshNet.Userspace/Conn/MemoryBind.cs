using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// A UDP bind on a <see cref="MemoryNetwork"/>, at a fixed address chosen by
/// <see cref="MemoryNetwork.CreateBind"/>; <see cref="Open"/> gives it a port. It behaves like a
/// socket bound to that one address: it sends only to destinations of its own address family.
/// </summary>
/// <remarks>
/// Thread safety: as <see cref="IUdpBind"/> requires, <see cref="Send"/>, <see cref="Port"/> and
/// <see cref="LocalEndpoint"/> may be used from any thread at any time; <see cref="Open"/>,
/// <see cref="Close"/> and <see cref="Dispose"/> are meant to be serialized by the caller and are
/// internally locked. When <see cref="Close"/> returns, the receiver is not being called (except
/// by the call that invoked <see cref="Close"/>, if it came from inside the receiver) and will not
/// be called again; datagrams still queued for the bind are discarded and counted in
/// <see cref="MemoryNetwork.Dropped"/>. Closing the network closes the bind too.
/// </remarks>
public sealed class MemoryBind : IUdpBind
{
    private readonly MemoryNetwork _network;
    private readonly bool _isIPv4;

    // Serializes Open/Close/Dispose changes of _socket and _disposed. Never held while a socket
    // closes (which may wait for a receiver that calls back into this bind).
    private readonly Lock _gate = new();

    // The open socket, or null. Written under _gate; read lock-free by Send and Port.
    private volatile MemorySocket? _socket;
    private bool _disposed; // Guarded by _gate.

    internal MemoryBind(MemoryNetwork network, IPAddress address)
    {
        _network = network;
        Address = address;
        _isIPv4 = address.AddressFamily == AddressFamily.InterNetwork;
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int length);
        AddressBits = NetEndpoint.FromAddressBytes(bytes[..length], 0).AddressBits;
    }

    /// <summary>The bind's address on its network.</summary>
    public IPAddress Address { get; }

    /// <inheritdoc/>
    public ushort Port => _socket?.Port ?? 0;

    /// <summary>The bind's address and current port (what its peers see as the source), or <c>default</c> when closed.</summary>
    public NetEndpoint LocalEndpoint => _socket?.Endpoint ?? default;

    /// <summary>The address as 128 bits, IPv4-mapped for IPv4: the routing-table form.</summary>
    internal UInt128 AddressBits { get; }

    /// <summary>
    /// Opens the bind on <paramref name="port"/> at its address. If it is open, the current port
    /// is closed first (see <see cref="Close"/>); if the new port cannot be taken, the bind stays
    /// closed.
    /// </summary>
    /// <param name="port">The port; 0 picks an unused one from the dynamic range 49152-65535.</param>
    /// <param name="receiver">Called with each datagram delivered to this bind.</param>
    /// <returns>The port now open.</returns>
    /// <exception cref="SocketException">Another open bind at this address uses the port (<see cref="SocketError.AddressAlreadyInUse"/>).</exception>
    /// <exception cref="ObjectDisposedException">The bind or its network has been disposed.</exception>
    public ushort Open(ushort port, IDatagramReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);

        MemorySocket? previous;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            previous = _socket;
            _socket = null;
        }
        previous?.Close();

        MemorySocket socket = _network.OpenSocket(this, port, receiver);
        bool disposed;
        lock (_gate)
        {
            disposed = _disposed;
            previous = _socket; // Non-null only if another Open overlapped this one.
            _socket = disposed ? null : socket;
        }
        previous?.Close();
        if (disposed)
        {
            socket.Close();
            throw new ObjectDisposedException(GetType().FullName);
        }
        return socket.Port;
    }

    /// <summary>
    /// Closes the port: stops delivery, discards queued datagrams, and waits until the receiver
    /// is no longer running (unless called from inside it). Idempotent; the bind can be opened
    /// again.
    /// </summary>
    public void Close()
    {
        MemorySocket? socket;
        lock (_gate)
        {
            socket = _socket;
            _socket = null;
        }
        socket?.Close();
    }

    /// <summary>
    /// Copies <paramref name="datagram"/> into the network, addressed to
    /// <paramref name="destination"/>. Like UDP, success says nothing about delivery: a datagram
    /// that the filter drops, that no open bind is listening for, or that finds a full queue is
    /// lost silently (and counted in <see cref="MemoryNetwork.Dropped"/>).
    /// </summary>
    /// <returns>
    /// True when the datagram entered the network; false when the bind is closed or disposed, or
    /// the destination is empty, has port 0, or is not of this bind's address family.
    /// </returns>
    public bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination)
    {
        MemorySocket? socket = _socket;
        if (socket is null || socket.IsClosed || destination.IsEmpty || destination.Port == 0 || destination.IsIPv4 != _isIPv4)
        {
            return false;
        }
        _network.Transmit(socket.Endpoint, destination, datagram);
        return true;
    }

    /// <summary>Closes the bind as <see cref="Close"/> does. Idempotent; afterwards <see cref="Open"/> throws and <see cref="Send"/> returns false.</summary>
    public void Dispose()
    {
        MemorySocket? socket;
        lock (_gate)
        {
            _disposed = true;
            socket = _socket;
            _socket = null;
        }
        socket?.Close();
    }

    /// <summary>Called by the network as it closes <paramref name="socket"/>: forgets it if it is still current.</summary>
    internal void Detach(MemorySocket socket)
    {
        lock (_gate)
        {
            if (_socket == socket)
            {
                _socket = null;
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"MemoryBind {Address} port {Port}";
}
