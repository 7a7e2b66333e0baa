using System.Buffers;
using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Udp;

namespace MeshNet.Userspace.Stack;

// The receive side of a UDP socket: the queue, pending receives, and what the UDP layer calls.
public sealed partial class UdpSocket
{
    /// <summary>
    /// Called by the UDP layer (on the link's thread) with a validated datagram for this socket:
    /// gives it to the oldest pending receive, or queues a copy.
    /// </summary>
    internal UdpDelivery Deliver(NetEndpoint source, ReadOnlySpan<byte> data)
    {
        UdpReceiveOperation? waiter;
        lock (_lock)
        {
            if (_disposed || (!_remote.IsEmpty && source != _remote))
            {
                return UdpDelivery.NoSocket;
            }
            waiter = _firstWaiter;
            if (waiter is null)
            {
                return Enqueue(source, data);
            }
            RemoveWaiter(waiter);
        }
        _layer.Context.Counters.UdpDatagramReceived();
        Complete(waiter, source, data);
        return UdpDelivery.Delivered;
    }

    /// <summary>Called by the UDP layer with an ICMP error about a datagram this socket sent to <paramref name="remote"/>.</summary>
    internal void OnIcmpError(IcmpErrorKind kind, NetEndpoint remote)
    {
        var error = kind switch
        {
            IcmpErrorKind.PortUnreachable => SocketError.ConnectionRefused,
            IcmpErrorKind.HostUnreachable => SocketError.HostUnreachable,
            IcmpErrorKind.AdministrativelyProhibited => SocketError.AccessDenied,
            _ => SocketError.Success, // soft errors (time exceeded, packet too big) are not reported, as on Linux
        };
        if (error == SocketError.Success)
        {
            return;
        }
        UdpReceiveOperation? waiter;
        lock (_lock)
        {
            if (_disposed || _remote.IsEmpty || _remote != remote)
            {
                return; // unconnected sockets do not report ICMP errors
            }
            waiter = _firstWaiter;
            if (waiter is null)
            {
                Volatile.Write(ref _pendingError, (int)error);
                return;
            }
            RemoveWaiter(waiter);
        }
        waiter.SetException(new SocketException((int)error));
    }

    /// <summary>Called by a pending receive's cancellation callback.</summary>
    internal void CancelReceive(UdpReceiveOperation operation, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!operation.IsQueued)
            {
                return; // already completed by a datagram or by disposal
            }
            RemoveWaiter(operation);
        }
        operation.SetException(new OperationCanceledException(cancellationToken));
    }

    /// <summary>Takes back a receive operation whose result was consumed, for reuse.</summary>
    internal void ReturnOperation(UdpReceiveOperation operation) =>
        Interlocked.CompareExchange(ref _cachedOperation, operation, null);

    private UdpReceiveOperation? StartReceive(Memory<byte> buffer, bool wantsSource, CancellationToken cancellationToken,
        out SocketReceiveFromResult result, out Exception? error)
    {
        result = default;
        error = null;
        QueuedDatagram datagram;
        UdpReceiveOperation? operation = null;
        lock (_lock)
        {
            if (_disposed)
            {
                error = new ObjectDisposedException(GetType().FullName);
                return null;
            }
            int pending = Interlocked.Exchange(ref _pendingError, 0);
            if (pending != 0)
            {
                error = new SocketException(pending);
                return null;
            }
            if (_queue.TryDequeue(out datagram))
            {
                _queuedBytes -= datagram.Charge;
            }
            else
            {
                operation = Interlocked.Exchange(ref _cachedOperation, null) ?? new UdpReceiveOperation(this);
                operation.Prepare(buffer, wantsSource, cancellationToken);
                AppendWaiter(operation);
            }
        }

        if (operation is not null)
        {
            // Outside the lock: the callback may run at once (the token was just cancelled) and takes it.
            operation.RegisterCancellation();
            return operation;
        }

        // A queued datagram, now ours alone: copy it outside the lock.
        try
        {
            int length = Math.Min(datagram.Length, buffer.Length);
            datagram.Buffer.AsSpan(0, length).CopyTo(buffer.Span);
            if (length < datagram.Length)
            {
                error = new SocketException((int)SocketError.MessageSize);
            }
            else
            {
                result = new SocketReceiveFromResult { ReceivedBytes = length, RemoteEndPoint = wantsSource ? SourceEndPoint(datagram.Source) : null! };
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(datagram.Buffer);
            _layer.Context.Budget.Release(datagram.Charge);
        }
        return null;
    }

    // Caller holds _lock and found no waiter.
    private UdpDelivery Enqueue(NetEndpoint source, ReadOnlySpan<byte> data)
    {
        if (_queue.Count >= _receiveQueueCapacity)
        {
            return UdpDelivery.QueueFull;
        }
        byte[] buffer = ArrayPool<byte>.Shared.Rent(data.Length);
        int charge = buffer.Length + DatagramOverhead;
        if (_queuedBytes + charge > _receiveBufferSize || !_layer.Context.Budget.TryReserve(charge))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return UdpDelivery.QueueFull;
        }
        data.CopyTo(buffer);
        _queue.Enqueue(new QueuedDatagram(buffer, data.Length, source, charge));
        _queuedBytes += charge;
        _layer.Context.Counters.UdpDatagramReceived();
        return UdpDelivery.Delivered;
    }

    // The operation has been taken off the waiter list: this thread alone completes it.
    private void Complete(UdpReceiveOperation operation, NetEndpoint source, ReadOnlySpan<byte> data)
    {
        int length = Math.Min(data.Length, operation.Buffer.Length);
        data[..length].CopyTo(operation.Buffer.Span);
        if (length < data.Length)
        {
            operation.SetException(new SocketException((int)SocketError.MessageSize));
            return;
        }
        operation.SetResult(new SocketReceiveFromResult
        {
            ReceivedBytes = length,
            RemoteEndPoint = operation.WantsSource ? SourceEndPoint(source) : null!,
        });
    }

    // Caller holds _lock.
    private void AppendWaiter(UdpReceiveOperation operation)
    {
        operation.IsQueued = true;
        operation.Next = null;
        operation.Previous = _lastWaiter;
        if (_lastWaiter is null)
        {
            _firstWaiter = operation;
        }
        else
        {
            _lastWaiter.Next = operation;
        }
        _lastWaiter = operation;
    }

    // Caller holds _lock.
    private void RemoveWaiter(UdpReceiveOperation operation)
    {
        if (operation.Previous is null)
        {
            _firstWaiter = operation.Next;
        }
        else
        {
            operation.Previous.Next = operation.Next;
        }
        if (operation.Next is null)
        {
            _lastWaiter = operation.Previous;
        }
        else
        {
            operation.Next.Previous = operation.Previous;
        }
        operation.Next = operation.Previous = null;
        operation.IsQueued = false;
    }

    // Caller holds _lock: returns a dequeued datagram's buffer and memory.
    private void Release(QueuedDatagram datagram)
    {
        _queuedBytes -= datagram.Charge;
        ArrayPool<byte>.Shared.Return(datagram.Buffer);
        _layer.Context.Budget.Release(datagram.Charge);
    }

    // The sender as the public API wants it, reusing the last instance while it is the same
    // endpoint and the caller has not modified it.
    private IPEndPoint SourceEndPoint(NetEndpoint source)
    {
        var cached = Volatile.Read(ref _lastSource);
        if (cached is not null && cached.Key == source && cached.Value.Port == source.Port &&
            NetAddress.FromIPAddress(cached.Value.Address) == source.Address)
        {
            return cached.Value;
        }
        var endPoint = source.ToIPEndPoint();
        Volatile.Write(ref _lastSource, new CachedEndPoint(source, endPoint));
        return endPoint;
    }

    /// <summary>A queued datagram: a pooled buffer, the payload length, the sender, and the bytes charged for it.</summary>
    private readonly record struct QueuedDatagram(byte[] Buffer, int Length, NetEndpoint Source, int Charge);

    /// <summary>The last sender endpoint handed out, and what it stood for.</summary>
    private sealed record CachedEndPoint(NetEndpoint Key, IPEndPoint Value);
}
