using System.Buffers;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// One open <see cref="MemoryBind"/>: an address and port on a <see cref="MemoryNetwork"/>, its
/// receiver, and (in <see cref="MemoryDeliveryMode.Background"/> mode) its queue and delivery
/// thread. Created by <see cref="MemoryBind.Open"/>, torn down once by <see cref="Close"/>, never
/// reopened.
/// </summary>
internal sealed class MemorySocket
{
    private readonly MemoryNetwork _network;
    private readonly IDatagramReceiver _receiver;

    // Held while the receiver runs. Close takes it after marking the socket closed, which waits
    // out a call in progress on another thread; the lock is reentrant, so Close from inside the
    // receiver does not deadlock.
    private readonly Lock _receiverLock = new();

    // Background mode only: the queue (also the monitor the delivery thread waits on) and the
    // thread. _inbox contents are guarded by locking _inbox.
    private readonly Queue<MemoryDatagram>? _inbox;
    private readonly Thread? _thread;

    // Set once, under the lock that guards the queue holding this socket's datagrams (_inbox in
    // Background mode, the network's manual lock in Manual mode), so no datagram is queued after
    // it. Read without a lock by senders and, under _receiverLock, before every delivery.
    private volatile bool _closed;
    private int _closeStarted;

    public MemorySocket(MemoryNetwork network, MemoryBind owner, NetEndpoint endpoint, IDatagramReceiver receiver)
    {
        _network = network;
        _receiver = receiver;
        Owner = owner;
        Endpoint = endpoint;
        Key = new MemoryRouteKey(endpoint.AddressBits, endpoint.Port);
        if (network.Delivery == MemoryDeliveryMode.Background)
        {
            _inbox = new Queue<MemoryDatagram>();
            _thread = new Thread(DeliveryLoop)
            {
                IsBackground = true,
                Name = $"MeshNet memory {endpoint}",
            };
        }
    }

    /// <summary>The bind this socket was opened for.</summary>
    public MemoryBind Owner { get; }

    /// <summary>The socket's address and port: the source its datagrams carry.</summary>
    public NetEndpoint Endpoint { get; }

    /// <summary>The socket's key in the network's routing table.</summary>
    public MemoryRouteKey Key { get; }

    /// <summary>The port.</summary>
    public ushort Port => Endpoint.Port;

    /// <summary>True once closing has begun: nothing more is queued or delivered.</summary>
    public bool IsClosed => _closed;

    /// <summary>Manual mode: datagrams in the network queue for this socket. Guarded by the network's manual lock.</summary>
    public int PendingCount { get; set; }

    /// <summary>Starts the delivery thread (Background mode).</summary>
    public void Start() => _thread?.UnsafeStart();

    /// <summary>Marks the socket closed. The caller holds the lock guarding its queue.</summary>
    public void MarkClosed() => _closed = true;

    /// <summary>Background mode: queues a datagram unless the socket is closed or its queue full.</summary>
    /// <returns>False when the datagram was not queued; the caller still owns its buffer.</returns>
    public bool TryEnqueue(in MemoryDatagram datagram)
    {
        Queue<MemoryDatagram> inbox = _inbox!;
        lock (inbox)
        {
            if (_closed || inbox.Count >= _network.QueueCapacity)
            {
                return false;
            }
            inbox.Enqueue(datagram);
            if (inbox.Count == 1)
            {
                Monitor.Pulse(inbox); // The delivery thread waits only on an empty queue.
            }
            return true;
        }
    }

    /// <summary>
    /// Calls the receiver with <paramref name="datagram"/> unless the socket has closed; the
    /// caller returns the buffer afterwards. Receiver exceptions are logged and swallowed.
    /// </summary>
    /// <returns>True when the receiver was called.</returns>
    public bool Deliver(in MemoryDatagram datagram)
    {
        lock (_receiverLock)
        {
            if (_closed)
            {
                return false;
            }
            _network.CountDelivered();
            try
            {
                _receiver.OnDatagram(datagram.Buffer.AsSpan(0, datagram.Length), datagram.Source);
            }
            catch (Exception e)
            {
                _network.ReportReceiverFailure(e, Endpoint, datagram.Source);
            }
            return true;
        }
    }

    /// <summary>
    /// Stops delivery: unregisters the socket, discards its queued datagrams, then waits until
    /// its receiver is not running on another thread and (Background mode) its delivery thread
    /// has ended. Called from inside the receiver it does not wait for itself. Idempotent; every
    /// caller returns only once the receiver will not be called again.
    /// </summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closeStarted, 1) == 0)
        {
            _network.Unregister(this);
            if (_inbox is null)
            {
                _network.CloseManual(this);
            }
            else
            {
                DiscardInbox();
            }
        }

        // Wait out a receiver call in progress on another thread (reentrant on this one).
        _receiverLock.Enter();
        _receiverLock.Exit();

        if (_thread is not null && Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
    }

    private void DiscardInbox()
    {
        Queue<MemoryDatagram> inbox = _inbox!;
        int discarded = 0;
        lock (inbox)
        {
            _closed = true;
            while (inbox.TryDequeue(out MemoryDatagram datagram))
            {
                ArrayPool<byte>.Shared.Return(datagram.Buffer);
                discarded++;
            }
            Monitor.PulseAll(inbox);
        }
        _network.CountDiscarded(discarded);
    }

    private void DeliveryLoop()
    {
        Queue<MemoryDatagram> inbox = _inbox!;
        while (true)
        {
            MemoryDatagram datagram;
            lock (inbox)
            {
                while (inbox.Count == 0 && !_closed)
                {
                    Monitor.Wait(inbox);
                }
                if (_closed)
                {
                    return;
                }
                datagram = inbox.Dequeue();
            }
            _network.Deliver(datagram);
        }
    }
}

/// <summary>A routing-table key: an address (IPv4 held IPv4-mapped) and a port.</summary>
internal readonly record struct MemoryRouteKey(UInt128 Address, ushort Port);

/// <summary>A datagram in flight: a pooled buffer (owned by whoever holds this value), its length, its source and its destination socket.</summary>
internal readonly record struct MemoryDatagram(byte[] Buffer, int Length, NetEndpoint Source, MemorySocket Target);
