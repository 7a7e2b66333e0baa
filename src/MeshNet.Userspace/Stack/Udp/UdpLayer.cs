using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Icmp;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Udp;

/// <summary>
/// UDP (RFC 768, RFC 8200 8.1): the port table, datagram validation and delivery to
/// <see cref="UdpSocket"/>s, the send path, and ICMP errors for sockets.
/// </summary>
/// <remarks>
/// <para>Binding rules: a socket binds one of the stack's addresses, <c>0.0.0.0</c> (every
/// IPv4 address) or <c>::</c> (every address of both families: dual-stack). Bindings on one
/// port must not overlap (as on Linux without <c>SO_REUSEADDR</c>): <c>::</c> excludes every
/// other binding of the port, <c>0.0.0.0</c> every IPv4 one, so at most one socket matches a
/// datagram. Port 0 picks a free port in 49152-65535 starting at a random point (RFC 6056).</para>
/// <para>Receive: the length field must be 8 or more and fit the packet (bytes past it are
/// ignored); the checksum is verified (IPv4: zero means none; IPv6: zero is invalid,
/// RFC 8200 8.1); port 0 is refused. With no socket for the destination, or a connected socket
/// whose peer is not the sender (as on Linux), an ICMP port unreachable goes back
/// (rate-limited).</para>
/// <para>Thread safety: the port table is read lock-free (one <see cref="ConcurrentDictionary{TKey, TValue}"/>
/// lookup per wildcard level per datagram); binds and closes are serialized by a lock.</para>
/// </remarks>
internal sealed class UdpLayer : ITransportHandler, IDisposable
{
    /// <summary>The UDP header.</summary>
    public const int HeaderLength = 8;

    private const int FirstEphemeralPort = 49152;
    private const int EphemeralPortCount = 65536 - FirstEphemeralPort;

    private readonly StackContext _context;
    private readonly IcmpErrorSender _errors;
    private readonly ConcurrentDictionary<UdpBindingKey, UdpSocket> _sockets = new();
    private readonly Lock _bindLock = new();
    private bool _disposed; // guarded by _bindLock

    public UdpLayer(StackContext context, IcmpErrorSender errors)
    {
        _context = context;
        _errors = errors;
    }

    public StackContext Context => _context;

    /// <summary>Sockets bound now.</summary>
    public int SocketCount => _sockets.Count;

    /// <summary>Binds a new socket; see <see cref="IpStack.BindUdp"/> for the rules and exceptions.</summary>
    public UdpSocket Bind(IPEndPoint localEndPoint)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        IPAddress address = localEndPoint.Address;
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"A UDP socket binds an IPv4 or IPv6 address, not {address.AddressFamily}.", nameof(localEndPoint));
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        UdpBindKind kind;
        NetAddress local = default;
        IPAddress reported;
        if (address.Equals(IPAddress.Any))
        {
            kind = UdpBindKind.AnyIPv4;
            reported = IPAddress.Any;
        }
        else if (address.Equals(IPAddress.IPv6Any))
        {
            kind = UdpBindKind.AnyDual;
            reported = IPAddress.IPv6Any;
        }
        else
        {
            kind = UdpBindKind.Address;
            local = NetAddress.FromIPAddress(address);
            if (!_context.IsLocal(local))
            {
                throw new SocketException((int)SocketError.AddressNotAvailable);
            }
            reported = local.ToIPAddress();
        }

        UdpSocket socket;
        lock (_bindLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, typeof(IpStack));
            ushort port = localEndPoint.Port == 0 ? AllocatePort(kind, local) : (ushort)localEndPoint.Port;
            if (Conflicts(kind, local, port))
            {
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            }
            var key = new UdpBindingKey(kind == UdpBindKind.Address ? local.Bits : UInt128.Zero, kind, port);
            socket = new UdpSocket(this, key, local, new IPEndPoint(reported, port));
            _sockets[key] = socket;
        }
        StackLog.UdpBound(_context.Logger, socket.LocalEndPoint);
        return socket;
    }

    /// <inheritdoc/>
    public void OnPacket(in IpPacketInfo ip, Span<byte> payload)
    {
        if (payload.Length < HeaderLength)
        {
            _context.Counters.Drop(StackDropReason.UdpMalformed);
            return;
        }
        int length = BinaryPrimitives.ReadUInt16BigEndian(payload[4..]);
        if (length < HeaderLength || length > payload.Length)
        {
            _context.Counters.Drop(StackDropReason.UdpMalformed);
            return;
        }
        Span<byte> datagram = payload[..length];
        ushort checksum = BinaryPrimitives.ReadUInt16BigEndian(datagram[6..]);
        bool checksumOk = checksum == 0
            ? !ip.IsIPv6
            : InternetChecksum.Transport(ip.Source, ip.Destination, IpProtocol.Udp, datagram) == 0;
        ushort destinationPort = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (!checksumOk || destinationPort == 0)
        {
            _context.Counters.Drop(StackDropReason.UdpMalformed);
            return;
        }

        var socket = Lookup(ip.Destination, destinationPort);
        var source = NetEndpoint.Create(ip.Source, BinaryPrimitives.ReadUInt16BigEndian(datagram));
        var outcome = socket?.Deliver(source, datagram[HeaderLength..]) ?? UdpDelivery.NoSocket;
        switch (outcome)
        {
            case UdpDelivery.Delivered:
                break; // counted by the socket, before a waiting reader can see the datagram
            case UdpDelivery.QueueFull:
                _context.Counters.Drop(StackDropReason.UdpReceiveQueueFull);
                break;
            default:
                _context.Counters.Drop(StackDropReason.UdpNoListener);
                _errors.PortUnreachable(ip);
                break;
        }
    }

    /// <inheritdoc/>
    public void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted)
    {
        if (!QuotedPacket.TryParse(quoted, quoted.Length > 0 && quoted[0] >> 4 == 6, out var packet) || packet.Protocol != IpProtocol.Udp)
        {
            return;
        }
        ushort localPort = BinaryPrimitives.ReadUInt16BigEndian(packet.Transport);
        ushort remotePort = BinaryPrimitives.ReadUInt16BigEndian(packet.Transport[2..]);
        Lookup(packet.Source, localPort)?.OnIcmpError(kind, NetEndpoint.Create(packet.Destination, remotePort));
    }

    /// <summary>
    /// Sends one datagram (the caller validated addresses and size). Allocation-free: the packet
    /// is built in a buffer rented from <see cref="ArrayPool{T}.Shared"/>.
    /// </summary>
    /// <exception cref="SocketException">The IP layer could not send it (the stack is closing).</exception>
    public void Send(NetAddress source, ushort sourcePort, NetEndpoint destination, ReadOnlySpan<byte> data)
    {
        NetAddress to = destination.Address;
        int length = HeaderLength + data.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(IIpOutput.HeaderRoom + length);
        try
        {
            Span<byte> datagram = buffer.AsSpan(IIpOutput.HeaderRoom, length);
            BinaryPrimitives.WriteUInt16BigEndian(datagram, sourcePort);
            BinaryPrimitives.WriteUInt16BigEndian(datagram[2..], destination.Port);
            BinaryPrimitives.WriteUInt16BigEndian(datagram[4..], (ushort)length); // IPv6 jumbograms aside, always fits
            datagram[6] = datagram[7] = 0;
            data.CopyTo(datagram[HeaderLength..]);
            ushort checksum = InternetChecksum.Transport(source, to, IpProtocol.Udp, datagram);
            BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], checksum == 0 ? (ushort)0xFFFF : checksum);
            if (!_context.Output.Send(source, to, IpProtocol.Udp, buffer, length))
            {
                throw new SocketException((int)SocketError.NetworkDown);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        _context.Counters.UdpDatagramSent();
    }

    /// <summary>Removes a closing socket from the port table.</summary>
    public void Unbind(UdpSocket socket) =>
        _sockets.TryRemove(new KeyValuePair<UdpBindingKey, UdpSocket>(socket.Key, socket));

    /// <summary>Closes every socket; later binds throw <see cref="ObjectDisposedException"/>. Idempotent.</summary>
    public void Dispose()
    {
        UdpSocket[] open;
        lock (_bindLock)
        {
            _disposed = true;
            open = [.. _sockets.Values];
        }
        foreach (var socket in open)
        {
            socket.Dispose();
        }
    }

    private UdpSocket? Lookup(NetAddress local, ushort port)
    {
        if (_sockets.TryGetValue(new UdpBindingKey(local.Bits, UdpBindKind.Address, port), out var socket) ||
            (local.IsIPv4 && _sockets.TryGetValue(new UdpBindingKey(UInt128.Zero, UdpBindKind.AnyIPv4, port), out socket)) ||
            _sockets.TryGetValue(new UdpBindingKey(UInt128.Zero, UdpBindKind.AnyDual, port), out socket))
        {
            return socket;
        }
        return null;
    }

    // Caller holds _bindLock.
    private bool Conflicts(UdpBindKind kind, NetAddress local, ushort port)
    {
        if (_sockets.ContainsKey(new UdpBindingKey(UInt128.Zero, UdpBindKind.AnyDual, port)))
        {
            return true;
        }
        bool ipv4 = kind == UdpBindKind.AnyIPv4 || (kind == UdpBindKind.Address && local.IsIPv4);
        if (ipv4 && _sockets.ContainsKey(new UdpBindingKey(UInt128.Zero, UdpBindKind.AnyIPv4, port)))
        {
            return true;
        }
        if (kind == UdpBindKind.Address)
        {
            return _sockets.ContainsKey(new UdpBindingKey(local.Bits, UdpBindKind.Address, port));
        }
        if (kind == UdpBindKind.AnyDual && _sockets.ContainsKey(new UdpBindingKey(UInt128.Zero, UdpBindKind.AnyIPv4, port)))
        {
            return true;
        }
        foreach (var address in _context.Addresses)
        {
            if ((kind == UdpBindKind.AnyDual || address.IsIPv4) &&
                _sockets.ContainsKey(new UdpBindingKey(address.Bits, UdpBindKind.Address, port)))
            {
                return true;
            }
        }
        return false;
    }

    // Caller holds _bindLock.
    private ushort AllocatePort(UdpBindKind kind, NetAddress local)
    {
        int start = Random.Shared.Next(EphemeralPortCount);
        for (int i = 0; i < EphemeralPortCount; i++)
        {
            var port = (ushort)(FirstEphemeralPort + ((start + i) % EphemeralPortCount));
            if (!Conflicts(kind, local, port))
            {
                return port;
            }
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }
}

/// <summary>What became of a datagram handed to a socket.</summary>
internal enum UdpDelivery
{
    /// <summary>Queued, or given to a waiting receive.</summary>
    Delivered,

    /// <summary>The socket's queue or the stack's memory budget was full.</summary>
    QueueFull,

    /// <summary>No socket takes it: none bound, closed, or connected to another peer.</summary>
    NoSocket,
}
