using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Udp;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// A UDP socket of an <see cref="IpStack"/>, created by <see cref="IpStack.BindUdp"/>: sends
/// and receives datagrams to and from any peer, or only one after <see cref="Connect"/>. Its
/// members mirror <see cref="Socket"/>'s datagram methods.
/// </summary>
/// <remarks>
/// <para><b>Families.</b> A socket bound to an IPv4 address or <see cref="IPAddress.Any"/>
/// speaks IPv4; one bound to an IPv6 address speaks IPv6; one bound to
/// <see cref="IPAddress.IPv6Any"/> is dual-stack and speaks both. Destinations may be given as
/// IPv4-mapped IPv6 addresses. Unlike a dual-mode <see cref="Socket"/>, received IPv4 senders
/// are reported as plain IPv4 endpoints, never IPv4-mapped.</para>
/// <para><b>Receiving.</b> Datagrams wait in a queue bounded by
/// <see cref="ReceiveQueueCapacity"/> datagrams and <see cref="ReceiveBufferSize"/> bytes (the
/// memory held, a little more than the payload, also reserved against the stack's
/// <see cref="IpStackOptions.MemoryBudget"/>); a datagram that does not fit is dropped and
/// counted (<see cref="StackDropReason.UdpReceiveQueueFull"/>). Several receives may be pending
/// at once; datagrams complete them in call order. A receive whose buffer is smaller than the
/// datagram gets what fits and then fails with <see cref="SocketException"/>
/// (<see cref="SocketError.MessageSize"/>): the datagram is consumed, as with
/// <see cref="Socket"/>. Each datagram is copied once on arrival (into a pooled buffer, or
/// straight into a pending receive's buffer); a socket that receives from one peer at a time
/// allocates nothing per datagram, the sender's <see cref="IPEndPoint"/> being reused while it
/// is unchanged (and not modified by the caller).</para>
/// <para><b>Sending</b> is synchronous (the packet is handed to the link before the call
/// returns); the asynchronous forms complete at once. Datagrams larger than the MTU are
/// fragmented; at most <see cref="MaxIPv4Datagram"/> or <see cref="MaxIPv6Datagram"/> bytes.
/// Errors are <see cref="SocketException"/>s: <see cref="SocketError.MessageSize"/> (too large),
/// <see cref="SocketError.AddressFamilyNotSupported"/> (a family the socket does not speak),
/// <see cref="SocketError.AddressNotAvailable"/> (port 0, or an address that is not a remote
/// unicast one: unspecified, multicast, broadcast, or the stack's own, since the stack does not
/// loop packets back), <see cref="SocketError.NetworkUnreachable"/> (the stack has no address of
/// that family), <see cref="SocketError.NotConnected"/> (<see cref="SendAsync"/> before
/// <see cref="Connect"/>).</para>
/// <para><b>Connected mode.</b> After <see cref="Connect"/>, only datagrams from that peer are
/// received (others, and datagrams already queued from others, are dropped: the stack answers
/// them with port unreachable as Linux does), and an ICMP port or host unreachable from it fails
/// the next receive or send with <see cref="SocketError.ConnectionRefused"/> or
/// <see cref="SocketError.HostUnreachable"/>.</para>
/// <para><b>Cancellation and disposal.</b> Every asynchronous call takes a token: cancelling it
/// fails that call with <see cref="OperationCanceledException"/>. <see cref="Dispose"/> releases
/// the port, drops queued datagrams, and fails pending receives with
/// <see cref="ObjectDisposedException"/>; afterwards every call throws (or returns a task
/// failed with) <see cref="ObjectDisposedException"/>. Disposing the stack disposes its
/// sockets. Disposal is idempotent.</para>
/// <para><b>Thread safety.</b> Every member may be called from any thread, concurrently.</para>
/// </remarks>
public sealed partial class UdpSocket : IAsyncDisposable, IDisposable
{
    /// <summary>The default <see cref="ReceiveBufferSize"/>: 256 KiB.</summary>
    public const int DefaultReceiveBufferSize = 256 << 10;

    /// <summary>The default <see cref="ReceiveQueueCapacity"/>: 1024 datagrams.</summary>
    public const int DefaultReceiveQueueCapacity = 1024;

    /// <summary>The largest IPv4 UDP payload: 65,535 - 20 (IP header) - 8 (UDP header).</summary>
    public const int MaxIPv4Datagram = 65507;

    /// <summary>The largest IPv6 UDP payload: 65,535 - 8 (UDP header); no jumbograms.</summary>
    public const int MaxIPv6Datagram = 65527;

    private const int DatagramOverhead = 64; // bookkeeping charged per queued datagram

    private readonly UdpLayer _layer;
    private readonly NetAddress _boundAddress; // empty for wildcard bindings
    private readonly IPEndPoint _localEndPoint;

    private readonly Lock _lock = new();
    private readonly Queue<QueuedDatagram> _queue = new();  // guarded by _lock
    private UdpReceiveOperation? _firstWaiter;               // guarded by _lock
    private UdpReceiveOperation? _lastWaiter;                // guarded by _lock
    private long _queuedBytes;                               // guarded by _lock
    private NetEndpoint _remote;                             // guarded by _lock; empty when not connected
    private NetAddress _connectedSource;                     // guarded by _lock
    private volatile bool _disposed;                         // written under _lock
    private volatile int _receiveBufferSize = DefaultReceiveBufferSize;
    private volatile int _receiveQueueCapacity = DefaultReceiveQueueCapacity;
    private int _pendingError;                               // a SocketError, taken atomically
    private UdpReceiveOperation? _cachedOperation;           // exchanged atomically
    private CachedEndPoint? _lastSource;                     // read and replaced atomically

    internal UdpSocket(UdpLayer layer, UdpBindingKey key, NetAddress boundAddress, IPEndPoint localEndPoint)
    {
        _layer = layer;
        Key = key;
        _boundAddress = boundAddress;
        _localEndPoint = localEndPoint;
    }

    /// <summary>
    /// The address and port the socket is bound to: one of the stack's addresses,
    /// <see cref="IPAddress.Any"/> or <see cref="IPAddress.IPv6Any"/>. A new instance on every call.
    /// </summary>
    public IPEndPoint LocalEndPoint => new(_localEndPoint.Address, _localEndPoint.Port);

    /// <summary>The peer set by <see cref="Connect"/>, or null. A new instance on every call.</summary>
    public IPEndPoint? RemoteEndPoint
    {
        get
        {
            lock (_lock)
            {
                return _remote.IsEmpty ? null : _remote.ToIPEndPoint();
            }
        }
    }

    /// <summary>
    /// Bytes the receive queue may hold (memory, counting a small overhead per datagram); a
    /// datagram that would exceed it is dropped. Default <see cref="DefaultReceiveBufferSize"/>.
    /// Takes effect for datagrams arriving afterwards.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public int ReceiveBufferSize
    {
        get => _receiveBufferSize;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _receiveBufferSize = value;
        }
    }

    /// <summary>
    /// Datagrams the receive queue may hold. Default <see cref="DefaultReceiveQueueCapacity"/>.
    /// Takes effect for datagrams arriving afterwards.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public int ReceiveQueueCapacity
    {
        get => _receiveQueueCapacity;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _receiveQueueCapacity = value;
        }
    }

    internal UdpBindingKey Key { get; }

    /// <summary>Datagrams waiting in the receive queue.</summary>
    internal int QueuedCount
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>
    /// Restricts the socket to one peer: later sends without a destination go to it, and only
    /// its datagrams are received; datagrams already queued from other senders are dropped. May
    /// be called again to change the peer.
    /// </summary>
    /// <exception cref="SocketException">The peer cannot be reached from this socket (see the class remarks).</exception>
    /// <exception cref="ObjectDisposedException">The socket has been disposed.</exception>
    public void Connect(IPEndPoint remoteEndPoint)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var remote = ResolveDestination(remoteEndPoint, out var source);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _remote = remote;
            _connectedSource = source;
            Interlocked.Exchange(ref _pendingError, 0);
            for (int i = _queue.Count; i > 0; i--)
            {
                var datagram = _queue.Dequeue();
                if (datagram.Source == remote)
                {
                    _queue.Enqueue(datagram); // rotating the whole queue keeps its order
                }
                else
                {
                    Release(datagram);
                }
            }
        }
    }

    /// <summary>Sends one datagram to <paramref name="remoteEndPoint"/>, synchronously.</summary>
    /// <returns>The number of bytes sent: all of <paramref name="datagram"/>.</returns>
    /// <exception cref="SocketException">See the class remarks.</exception>
    /// <exception cref="ObjectDisposedException">The socket has been disposed.</exception>
    public int SendTo(ReadOnlySpan<byte> datagram, IPEndPoint remoteEndPoint)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var destination = ResolveDestination(remoteEndPoint, out var source);
        return SendCore(datagram, source, destination);
    }

    /// <summary>Sends one datagram to the peer set by <see cref="Connect"/>, synchronously.</summary>
    /// <returns>The number of bytes sent: all of <paramref name="datagram"/>.</returns>
    /// <exception cref="SocketException">Not connected, or see the class remarks.</exception>
    /// <exception cref="ObjectDisposedException">The socket has been disposed.</exception>
    public int Send(ReadOnlySpan<byte> datagram)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        NetEndpoint destination;
        NetAddress source;
        lock (_lock)
        {
            destination = _remote;
            source = _connectedSource;
        }
        if (destination.IsEmpty)
        {
            throw new SocketException((int)SocketError.NotConnected);
        }
        return SendCore(datagram, source, destination);
    }

    /// <summary>Sends one datagram to <paramref name="remoteEndPoint"/>; completes when it has been handed to the link.</summary>
    /// <returns>The number of bytes sent.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="remoteEndPoint"/> is null (thrown, not returned).</exception>
    public ValueTask<int> SendToAsync(ReadOnlyMemory<byte> datagram, IPEndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }
        try
        {
            return new ValueTask<int>(SendTo(datagram.Span, remoteEndPoint));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return ValueTask.FromException<int>(e);
        }
    }

    /// <summary>Sends one datagram to the connected peer; completes when it has been handed to the link.</summary>
    /// <returns>The number of bytes sent.</returns>
    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }
        try
        {
            return new ValueTask<int>(Send(datagram.Span));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return ValueTask.FromException<int>(e);
        }
    }

    /// <summary>
    /// Receives one datagram into <paramref name="buffer"/>, waiting for one if none is queued.
    /// </summary>
    /// <returns>Its length and sender.</returns>
    /// <remarks>
    /// Fails with <see cref="SocketException"/> (<see cref="SocketError.MessageSize"/>) when the
    /// datagram was larger than <paramref name="buffer"/> (which then holds its beginning), with
    /// an ICMP-reported error in connected mode, with <see cref="OperationCanceledException"/>
    /// when <paramref name="cancellationToken"/> is cancelled, and with
    /// <see cref="ObjectDisposedException"/> when the socket is or gets disposed.
    /// </remarks>
    public ValueTask<SocketReceiveFromResult> ReceiveFromAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<SocketReceiveFromResult>(cancellationToken);
        }
        var operation = StartReceive(buffer, wantsSource: true, cancellationToken, out var result, out var error);
        if (operation is not null)
        {
            return new ValueTask<SocketReceiveFromResult>(operation, operation.Version);
        }
        return error is null ? new ValueTask<SocketReceiveFromResult>(result) : ValueTask.FromException<SocketReceiveFromResult>(error);
    }

    /// <summary>
    /// Receives one datagram into <paramref name="buffer"/> without reporting its sender
    /// (typically in connected mode), waiting for one if none is queued. Fails as
    /// <see cref="ReceiveFromAsync"/> does.
    /// </summary>
    /// <returns>The datagram's length.</returns>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }
        var operation = StartReceive(buffer, wantsSource: false, cancellationToken, out var result, out var error);
        if (operation is not null)
        {
            return new ValueTask<int>(operation, operation.Version);
        }
        return error is null ? new ValueTask<int>(result.ReceivedBytes) : ValueTask.FromException<int>(error);
    }

    /// <summary>
    /// Closes the socket: releases its port, drops queued datagrams, and fails pending receives
    /// with <see cref="ObjectDisposedException"/>. Idempotent.
    /// </summary>
    public void Dispose()
    {
        UdpReceiveOperation? waiters;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            while (_queue.TryDequeue(out var datagram))
            {
                Release(datagram);
            }
            waiters = _firstWaiter;
            for (var waiter = waiters; waiter is not null; waiter = waiter.Next)
            {
                waiter.IsQueued = false;
            }
            _firstWaiter = _lastWaiter = null;
        }
        _layer.Unbind(this);
        while (waiters is not null)
        {
            var next = waiters.Next; // read before completing: the consumer recycles the operation
            waiters.SetException(new ObjectDisposedException(GetType().FullName));
            waiters = next;
        }
        StackLog.UdpClosed(_layer.Context.Logger, _localEndPoint);
    }

    /// <summary>Closes the socket as <see cref="Dispose"/> does.</summary>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public override string ToString() => $"UDP {_localEndPoint}";

    private NetEndpoint ResolveDestination(IPEndPoint remoteEndPoint, out NetAddress source)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        IPAddress address = remoteEndPoint.Address;
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new SocketException((int)SocketError.AddressFamilyNotSupported);
        }
        var destination = NetAddress.FromIPAddress(address); // IPv4-mapped becomes IPv4
        var context = _layer.Context;
        if (remoteEndPoint.Port == 0 || !IpAddressRules.IsUnicast(destination) || context.IsLocal(destination))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }
        switch (Key.Kind)
        {
            case UdpBindKind.Address:
                if (_boundAddress.IsIPv4 != destination.IsIPv4)
                {
                    throw new SocketException((int)SocketError.AddressFamilyNotSupported);
                }
                source = _boundAddress;
                break;
            case UdpBindKind.AnyIPv4 when !destination.IsIPv4:
                throw new SocketException((int)SocketError.AddressFamilyNotSupported);
            default:
                source = context.SourceFor(destination);
                break;
        }
        if (source.IsEmpty)
        {
            throw new SocketException((int)SocketError.NetworkUnreachable);
        }
        return NetEndpoint.Create(destination, (ushort)remoteEndPoint.Port);
    }

    private int SendCore(ReadOnlySpan<byte> datagram, NetAddress source, NetEndpoint destination)
    {
        if (datagram.Length > (destination.IsIPv4 ? MaxIPv4Datagram : MaxIPv6Datagram))
        {
            throw new SocketException((int)SocketError.MessageSize);
        }
        int pending = Interlocked.Exchange(ref _pendingError, 0);
        if (pending != 0)
        {
            throw new SocketException(pending);
        }
        _layer.Send(source, Key.Port, destination, datagram);
        return datagram.Length;
    }
}
