using System.Buffers;

namespace MeshNet.Userspace.Link;

/// <summary>
/// One end of a <see cref="MemoryLink"/>: what you write into it (<see cref="WritePacket"/>)
/// goes to the other end's <see cref="Receiver"/>, and what the other end is written reaches
/// this end's <see cref="Receiver"/>. Give it to a stack as its link, and attach the stack as
/// its receiver.
/// </summary>
/// <remarks>
/// Thread safety: every member may be called from any thread. <see cref="WritePacket"/> only
/// copies and queues: it never calls a receiver, so it is safe to call from inside one.
/// </remarks>
public sealed class MemoryLinkEnd : IPacketSink
{
    // Background mode: the queue of packets for this end's receiver (also the monitor the
    // delivery thread waits on; contents guarded by locking it), and the thread.
    private readonly Queue<LinkPacket>? _inbox;
    private readonly Thread? _thread;
    private bool _stopped; // guarded by locking _inbox

    private volatile IPacketSink? _receiver;
    private long _sent;
    private long _received;
    private long _dropped;
    private long _duplicated;

    internal MemoryLinkEnd(MemoryLink link, string name)
    {
        Link = link;
        Name = name;
        Peer = this;
        if (link.Delivery == MemoryLinkDeliveryMode.Background)
        {
            _inbox = new Queue<LinkPacket>();
            _thread = new Thread(DeliveryLoop)
            {
                IsBackground = true,
                Name = $"MeshNet memory link to {name}",
            };
        }
    }

    /// <summary>The link this end belongs to.</summary>
    public MemoryLink Link { get; }

    /// <summary>"A" or "B".</summary>
    public string Name { get; }

    /// <summary>The other end.</summary>
    public MemoryLinkEnd Peer { get; internal set; }

    /// <summary>
    /// Gets the packets written into <see cref="Peer"/>: typically a stack or a recorder. Null
    /// (the default) drops them (counted in <see cref="PacketsDropped"/>). May be set or replaced
    /// at any time; a delivery in progress uses the receiver it read. Exceptions it throws are
    /// logged and ignored.
    /// </summary>
    public IPacketSink? Receiver
    {
        get => _receiver;
        set => _receiver = value;
    }

    /// <summary>Packets written into this end.</summary>
    public long PacketsSent => Interlocked.Read(ref _sent);

    /// <summary>Packets handed to this end's receiver.</summary>
    public long PacketsReceived => Interlocked.Read(ref _received);

    /// <summary>Packets on their way to this end that were lost: too large, filtered, queue full, no receiver, or discarded at disposal.</summary>
    public long PacketsDropped => Interlocked.Read(ref _dropped);

    /// <summary>Extra copies of packets on their way to this end, made by the filter.</summary>
    public long PacketsDuplicated => Interlocked.Read(ref _duplicated);

    /// <summary>Manual mode: this end's packets in the link's queue. Guarded by the link's manual lock.</summary>
    internal int PendingCount { get; set; }

    /// <summary>Background mode: packets waiting for this end's receiver.</summary>
    internal int InboxCount
    {
        get
        {
            if (_inbox is null)
            {
                return 0;
            }
            lock (_inbox)
            {
                return _inbox.Count;
            }
        }
    }

    /// <summary>
    /// Sends one packet to the other end: it is copied, passed through the link's filter and
    /// queued. Never blocks on the receiver, never calls it, never throws for the packet's
    /// content; a packet that cannot be queued is dropped and counted.
    /// </summary>
    public void WritePacket(ReadOnlySpan<byte> packet) => Link.Transmit(this, packet);

    /// <inheritdoc/>
    public override string ToString() => $"MemoryLink end {Name}";

    internal void CountSent() => Interlocked.Increment(ref _sent);

    internal void CountDropped(int count) => Interlocked.Add(ref _dropped, count);

    internal void CountDuplicated() => Interlocked.Increment(ref _duplicated);

    internal void StartDelivery() => _thread?.UnsafeStart();

    /// <summary>Background mode: queues a packet unless stopped or full; on false the caller still owns the buffer.</summary>
    internal bool TryEnqueue(in LinkPacket packet)
    {
        var inbox = _inbox!;
        lock (inbox)
        {
            if (_stopped || inbox.Count >= Link.QueueCapacity)
            {
                return false;
            }
            inbox.Enqueue(packet);
            if (inbox.Count == 1)
            {
                Monitor.Pulse(inbox); // the delivery thread waits only on an empty queue
            }
            return true;
        }
    }

    /// <summary>Hands a dequeued packet to the receiver (or drops it when there is none), then returns its buffer.</summary>
    /// <returns>True when the receiver was called.</returns>
    internal bool Deliver(in LinkPacket packet)
    {
        try
        {
            var receiver = _receiver;
            if (receiver is null)
            {
                CountDropped(1);
                return false;
            }
            Interlocked.Increment(ref _received);
            try
            {
                receiver.WritePacket(packet.Buffer.AsSpan(0, packet.Length));
            }
            catch (Exception e)
            {
                Link.ReportReceiverFailure(e, this);
            }
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packet.Buffer);
        }
    }

    /// <summary>Background mode: stops the delivery thread, discarding queued packets, and waits for it (unless called on it).</summary>
    internal void StopDelivery()
    {
        if (_inbox is null)
        {
            return;
        }
        int discarded = 0;
        lock (_inbox)
        {
            _stopped = true;
            while (_inbox.TryDequeue(out var packet))
            {
                ArrayPool<byte>.Shared.Return(packet.Buffer);
                discarded++;
            }
            Monitor.PulseAll(_inbox);
        }
        CountDropped(discarded);
        if (Thread.CurrentThread != _thread)
        {
            _thread!.Join();
        }
    }

    private void DeliveryLoop()
    {
        var inbox = _inbox!;
        while (true)
        {
            LinkPacket packet;
            lock (inbox)
            {
                while (inbox.Count == 0 && !_stopped)
                {
                    Monitor.Wait(inbox);
                }
                if (_stopped)
                {
                    return;
                }
                packet = inbox.Dequeue();
            }
            Deliver(packet);
        }
    }
}
