using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// An in-memory UDP network: a real <see cref="IUdpBind"/> implementation without sockets, for
/// tests (the counterpart of wireguard-go's <c>conn/bindtest</c>). Create binds at any IPv4 or
/// IPv6 address with <see cref="CreateBind"/>; a datagram sent to <c>address:port</c> reaches the
/// bind currently open there, and its receiver sees the sender's address and current port as the
/// source. Loss and duplication are injected with <see cref="Filter"/>; <see cref="Sent"/>,
/// <see cref="Delivered"/>, <see cref="Dropped"/> and <see cref="Duplicated"/> count what
/// happened.
/// </summary>
/// <remarks>
/// <para>
/// Datagrams are copied into pooled buffers when sent and queued at the destination bind (at
/// most <see cref="MemoryNetworkOptions.QueueCapacity"/> per bind; beyond that they are dropped,
/// as a full socket buffer drops them). In <see cref="MemoryDeliveryMode.Background"/> mode each
/// open bind has a delivery thread; in <see cref="MemoryDeliveryMode.Manual"/> mode nothing is
/// delivered until <see cref="DeliverPending"/> is called.
/// </para>
/// <para>
/// Accounting: every datagram accepted by <c>Send</c> counts once in <see cref="Sent"/>, and a
/// duplicated one also in <see cref="Duplicated"/>. Each copy then ends either in
/// <see cref="Delivered"/> (handed to a receiver) or in <see cref="Dropped"/> (filtered, no bind at
/// the destination, queue full, or discarded because its bind closed), or is still queued. So
/// <c>Sent + Duplicated == Delivered + Dropped + queued</c>.
/// </para>
/// <para>
/// Thread safety: every member may be called from any thread. Disposing the network closes all
/// its binds; afterwards <see cref="CreateBind"/>, <see cref="DeliverPending"/> and
/// <c>Open</c> on its binds throw <see cref="ObjectDisposedException"/>, and sends return false.
/// </para>
/// </remarks>
public sealed partial class MemoryNetwork : IDisposable
{
    // Ports handed out for Open(0), like the IANA dynamic range.
    private const int FirstEphemeralPort = 49152;
    private const int EphemeralPortCount = 65536 - FirstEphemeralPort;

    private readonly ILogger _logger;

    // Open sockets by address and port. Lookups (one per datagram) are lock-free; changes are
    // made under _routesLock so that port allocation and conflict checks are atomic.
    private readonly ConcurrentDictionary<MemoryRouteKey, MemorySocket> _routes = new();
    private readonly Lock _routesLock = new();
    private int _nextEphemeral; // Guarded by _routesLock: offset of the next port to try.
    private bool _disposed;     // Guarded by _routesLock.

    // Manual mode: the network-wide FIFO queue. Guarded by _manualLock, together with every
    // socket's PendingCount and (in Manual mode) its closed flag.
    private readonly Queue<MemoryDatagram> _manualQueue = new();
    private readonly Lock _manualLock = new();

    private volatile MemoryFilter? _filter;
    private long _sent;
    private long _delivered;
    private long _dropped;
    private long _duplicated;

    /// <summary>Creates an empty network.</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults. Copied, not kept.</param>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public MemoryNetwork(MemoryNetworkOptions? options = null)
    {
        options ??= new MemoryNetworkOptions();
        options.Validate();
        Delivery = options.Delivery;
        QueueCapacity = options.QueueCapacity;
        _logger = options.Logger ?? NullLogger.Instance;
    }

    /// <summary>How queued datagrams reach receivers.</summary>
    public MemoryDeliveryMode Delivery { get; }

    /// <summary>How many datagrams may wait for one open bind before further ones are dropped.</summary>
    public int QueueCapacity { get; }

    /// <summary>
    /// The impairment hook, evaluated for every datagram on the sending thread; see
    /// <see cref="MemoryFilter"/>. <see langword="null"/> (the default) delivers everything.
    /// May be replaced at any time; a send in progress uses the filter it read.
    /// </summary>
    public MemoryFilter? Filter
    {
        get => _filter;
        set => _filter = value;
    }

    /// <summary>Datagrams accepted by <c>Send</c> on this network's binds.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Datagrams handed to a receiver (a duplicated datagram counts twice).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Datagrams lost: filtered, sent to no open bind, arriving at a full queue, or discarded when their bind closed.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Extra copies made by a <see cref="MemoryVerdict.Duplicate"/> verdict.</summary>
    public long Duplicated => Interlocked.Read(ref _duplicated);

    /// <summary>Creates a closed bind at <paramref name="address"/>; open it to give it a port.</summary>
    /// <param name="address">
    /// A concrete IPv4 or IPv6 address (not a wildcard). Several binds may share an address as
    /// long as they use different ports. An IPv4-mapped IPv6 address means the IPv4 address.
    /// </param>
    /// <exception cref="ArgumentException">The address is a wildcard or not IPv4/IPv6.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public MemoryBind CreateBind(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"A memory bind needs an IPv4 or IPv6 address, not {address.AddressFamily}.", nameof(address));
        }
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
        {
            throw new ArgumentException("A memory bind needs a concrete address, not a wildcard.", nameof(address));
        }
        lock (_routesLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }
        return new MemoryBind(this, address);
    }

    /// <summary>
    /// <see cref="MemoryDeliveryMode.Manual"/> mode: delivers queued datagrams on the calling
    /// thread, in the order they were sent across the whole network, including datagrams that
    /// receivers send while this runs, until the queue is empty or
    /// <paramref name="maxDatagrams"/> have been delivered.
    /// </summary>
    /// <param name="maxDatagrams">A cap that stops runaway ping-pong; at least 1.</param>
    /// <returns>The number of datagrams handed to receivers.</returns>
    /// <exception cref="InvalidOperationException">The network delivers in the background.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public int DeliverPending(int maxDatagrams = 100_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDatagrams, 1);
        if (Delivery != MemoryDeliveryMode.Manual)
        {
            throw new InvalidOperationException($"{nameof(DeliverPending)} is for {nameof(MemoryDeliveryMode)}.{nameof(MemoryDeliveryMode.Manual)} networks.");
        }
        lock (_routesLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        int delivered = 0;
        while (delivered < maxDatagrams)
        {
            MemoryDatagram datagram;
            lock (_manualLock)
            {
                if (!_manualQueue.TryDequeue(out datagram))
                {
                    break;
                }
                datagram.Target.PendingCount--;
            }
            if (Deliver(datagram))
            {
                delivered++;
            }
        }
        return delivered;
    }

    /// <summary>Closes every open bind of this network. Idempotent.</summary>
    public void Dispose()
    {
        MemorySocket[] open;
        lock (_routesLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            open = [.. _routes.Values];
        }
        foreach (MemorySocket socket in open)
        {
            socket.Owner.Detach(socket);
            socket.Close();
        }
    }

    /// <summary>
    /// Registers an open socket for <paramref name="owner"/> at <paramref name="port"/> (0: a
    /// free ephemeral port) and starts its delivery.
    /// </summary>
    /// <exception cref="SocketException">The port is in use, or no ephemeral port is free.</exception>
    internal MemorySocket OpenSocket(MemoryBind owner, ushort port, IDatagramReceiver receiver)
    {
        Span<byte> bytes = stackalloc byte[16];
        owner.Address.TryWriteBytes(bytes, out int length);
        lock (_routesLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (port == 0)
            {
                port = AllocatePort(owner.AddressBits);
            }
            else if (_routes.ContainsKey(new MemoryRouteKey(owner.AddressBits, port)))
            {
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            }

            var endpoint = NetEndpoint.FromAddressBytes(bytes[..length], port);
            var socket = new MemorySocket(this, owner, endpoint, receiver);
            _routes[socket.Key] = socket;
            socket.Start();
            return socket;
        }
    }

    // Caller holds _routesLock.
    private ushort AllocatePort(UInt128 address)
    {
        for (int i = 0; i < EphemeralPortCount; i++)
        {
            var port = (ushort)(FirstEphemeralPort + _nextEphemeral);
            _nextEphemeral = (_nextEphemeral + 1) % EphemeralPortCount;
            if (!_routes.ContainsKey(new MemoryRouteKey(address, port)))
            {
                return port;
            }
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }

    /// <summary>Removes <paramref name="socket"/> from the routing table, if it is still there.</summary>
    internal void Unregister(MemorySocket socket) =>
        _routes.TryRemove(new KeyValuePair<MemoryRouteKey, MemorySocket>(socket.Key, socket));

    /// <summary>
    /// Carries one datagram from <paramref name="source"/>: counts it, applies the filter, copies
    /// it into pooled buffers and queues it at the bind open on <paramref name="destination"/>.
    /// </summary>
    internal void Transmit(in NetEndpoint source, in NetEndpoint destination, ReadOnlySpan<byte> datagram)
    {
        Interlocked.Increment(ref _sent);

        MemoryVerdict verdict = MemoryVerdict.Deliver;
        MemoryFilter? filter = _filter;
        if (filter is not null)
        {
            try
            {
                verdict = filter(source, destination, datagram);
            }
            catch (Exception e)
            {
                LogFilterFailed(_logger, e, source, destination);
                verdict = MemoryVerdict.Drop;
            }
        }

        int copies;
        switch (verdict)
        {
            case MemoryVerdict.Deliver:
                copies = 1;
                break;
            case MemoryVerdict.Duplicate:
                copies = 2;
                Interlocked.Increment(ref _duplicated);
                break;
            default:
                Interlocked.Increment(ref _dropped);
                return;
        }

        if (!_routes.TryGetValue(new MemoryRouteKey(destination.AddressBits, destination.Port), out MemorySocket? target))
        {
            Interlocked.Add(ref _dropped, copies);
            return;
        }

        for (int i = 0; i < copies; i++)
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(datagram.Length, 1));
            datagram.CopyTo(buffer);
            var queued = new MemoryDatagram(buffer, datagram.Length, source, target);
            bool accepted = Delivery == MemoryDeliveryMode.Manual ? TryEnqueueManual(queued) : target.TryEnqueue(queued);
            if (!accepted)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                Interlocked.Increment(ref _dropped);
            }
        }
    }

    private bool TryEnqueueManual(in MemoryDatagram datagram)
    {
        lock (_manualLock)
        {
            MemorySocket target = datagram.Target;
            if (target.IsClosed || target.PendingCount >= QueueCapacity)
            {
                return false;
            }
            _manualQueue.Enqueue(datagram);
            target.PendingCount++;
            return true;
        }
    }

    /// <summary>
    /// Manual mode: marks <paramref name="socket"/> closed and discards its queued datagrams
    /// (returning their buffers and counting them as dropped).
    /// </summary>
    internal void CloseManual(MemorySocket socket)
    {
        lock (_manualLock)
        {
            socket.MarkClosed();
            if (socket.PendingCount == 0)
            {
                return;
            }
            int discarded = 0;
            for (int i = _manualQueue.Count; i > 0; i--)
            {
                MemoryDatagram datagram = _manualQueue.Dequeue();
                if (datagram.Target == socket)
                {
                    ArrayPool<byte>.Shared.Return(datagram.Buffer);
                    discarded++;
                }
                else
                {
                    _manualQueue.Enqueue(datagram); // Rotating the whole queue keeps its order.
                }
            }
            socket.PendingCount = 0;
            Interlocked.Add(ref _dropped, discarded);
        }
    }

    /// <summary>
    /// Hands a dequeued datagram to its bind's receiver (unless the bind has closed meanwhile),
    /// counts the outcome and returns the buffer to the pool.
    /// </summary>
    /// <returns>True when the receiver was called.</returns>
    internal bool Deliver(in MemoryDatagram datagram)
    {
        try
        {
            if (datagram.Target.Deliver(datagram))
            {
                return true;
            }
            Interlocked.Increment(ref _dropped); // The bind closed after the datagram was dequeued.
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(datagram.Buffer);
        }
    }

    /// <summary>Counts one datagram about to be handed to a receiver.</summary>
    internal void CountDelivered() => Interlocked.Increment(ref _delivered);

    /// <summary>Counts datagrams discarded from a closing bind's queue.</summary>
    internal void CountDiscarded(int count) => Interlocked.Add(ref _dropped, count);

    /// <summary>Logs an exception thrown by a receiver.</summary>
    internal void ReportReceiverFailure(Exception exception, in NetEndpoint local, in NetEndpoint source) =>
        LogReceiverFailed(_logger, exception, local, source);

    // Event ids 2150-2199 belong to MemoryNetwork. Keep them stable.

    [LoggerMessage(EventId = 2150, Level = LogLevel.Error, Message = "Datagram receiver of memory bind {Local} threw for a datagram from {Source}; delivery continues")]
    private static partial void LogReceiverFailed(ILogger logger, Exception exception, NetEndpoint local, NetEndpoint source);

    [LoggerMessage(EventId = 2151, Level = LogLevel.Error, Message = "Memory network filter threw for a datagram from {Source} to {Destination}; the datagram is dropped")]
    private static partial void LogFilterFailed(ILogger logger, Exception exception, NetEndpoint source, NetEndpoint destination);
}
