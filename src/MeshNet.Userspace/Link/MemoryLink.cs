using System.Buffers;
using MeshNet.Userspace.Stack.Ip;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshNet.Userspace.Link;

/// <summary>
/// An in-memory point-to-point link carrying IP packets between two ends, <see cref="A"/> and
/// <see cref="B"/>: the counterpart of <see cref="Conn.MemoryNetwork"/> for packets, for tests
/// and benchmarks of anything that speaks <see cref="IPacketSink"/> (two
/// <see cref="Stack.IpStack"/>s, a stack and a test, a stack and a WireGuard device).
/// </summary>
/// <example>
/// <code>
/// var (a, b) = MemoryLink.CreatePair();
/// var left = IpStack.Create(new IpStackOptions { Link = a, Addresses = [IPAddress.Parse("10.0.0.1")] });
/// var right = IpStack.Create(new IpStackOptions { Link = b, Addresses = [IPAddress.Parse("10.0.0.2")] });
/// a.Receiver = left;
/// b.Receiver = right;
/// </code>
/// </example>
/// <remarks>
/// <para>A packet written into one end (<see cref="MemoryLinkEnd.WritePacket"/>) is copied into
/// a pooled buffer and queued for the other end, whose <see cref="MemoryLinkEnd.Receiver"/>
/// gets it later: never inside <c>WritePacket</c>, so a stack that answers a packet while
/// receiving it cannot deadlock or recurse. In <see cref="MemoryLinkDeliveryMode.Background"/>
/// mode each direction has a delivery thread, preserving order; in
/// <see cref="MemoryLinkDeliveryMode.Manual"/> mode nothing moves until
/// <see cref="DeliverPending"/>.</para>
/// <para>Accounting, per receiving end and in total: each packet written counts once in
/// <c>PacketsSent</c> of the end it was written into, and a duplicated one also in
/// <c>PacketsDuplicated</c> of the other end; each copy then ends in
/// <see cref="MemoryLinkEnd.PacketsReceived"/> (handed to the receiver) or
/// <see cref="MemoryLinkEnd.PacketsDropped"/> (too large, filtered, queue full, no receiver
/// attached, or discarded at disposal), or is still queued.</para>
/// <para>Thread safety: every member may be called from any thread. Receivers are called on one
/// thread at a time per direction in Background mode; in Manual mode on the thread that calls
/// <see cref="DeliverPending"/>, which should be one thread at a time (concurrent calls deliver
/// in an interleaved order). After <see cref="Dispose"/> returns, packets written are dropped
/// and (in Background mode) receivers are no longer called.</para>
/// </remarks>
public sealed class MemoryLink : IDisposable
{
    private readonly ILogger _logger;

    // Manual mode: the FIFO shared by both directions, and each end's share of it. Guarded by _manualLock.
    private readonly Queue<LinkPacket> _manualQueue = new();
    private readonly Lock _manualLock = new();

    private volatile MemoryLinkFilter? _filter;
    private volatile bool _disposed;

    /// <summary>Creates a link and its two ends.</summary>
    /// <param name="options">Settings; null for the defaults. Copied, not kept.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is invalid (the message names it).</exception>
    public MemoryLink(MemoryLinkOptions? options = null)
    {
        options ??= new MemoryLinkOptions();
        options.Validate();
        Delivery = options.Delivery;
        QueueCapacity = options.QueueCapacity;
        MaxPacketSize = options.MaxPacketSize;
        _logger = options.Logger ?? NullLogger.Instance;
        A = new MemoryLinkEnd(this, "A");
        B = new MemoryLinkEnd(this, "B");
        A.Peer = B;
        B.Peer = A;
        if (Delivery == MemoryLinkDeliveryMode.Background)
        {
            A.StartDelivery();
            B.StartDelivery();
        }
    }

    /// <summary>Creates a link and returns its two ends (each knows its <see cref="MemoryLinkEnd.Link"/>).</summary>
    /// <param name="options">Settings; null for the defaults.</param>
    public static (MemoryLinkEnd A, MemoryLinkEnd B) CreatePair(MemoryLinkOptions? options = null)
    {
        var link = new MemoryLink(options);
        return (link.A, link.B);
    }

    /// <summary>One end; packets written into it reach <see cref="B"/>'s receiver.</summary>
    public MemoryLinkEnd A { get; }

    /// <summary>The other end; packets written into it reach <see cref="A"/>'s receiver.</summary>
    public MemoryLinkEnd B { get; }

    /// <summary>How queued packets reach receivers.</summary>
    public MemoryLinkDeliveryMode Delivery { get; }

    /// <summary>Packets that may wait in each direction.</summary>
    public int QueueCapacity { get; }

    /// <summary>The largest packet carried; larger ones are dropped.</summary>
    public int MaxPacketSize { get; }

    /// <summary>
    /// The impairment hook, evaluated for every packet on the writing thread; see
    /// <see cref="MemoryLinkFilter"/>. Null (the default) delivers everything. May be replaced at
    /// any time; a write in progress uses the filter it read.
    /// </summary>
    public MemoryLinkFilter? Filter
    {
        get => _filter;
        set => _filter = value;
    }

    /// <summary>Packets written into either end.</summary>
    public long PacketsSent => A.PacketsSent + B.PacketsSent;

    /// <summary>Packets handed to either end's receiver.</summary>
    public long PacketsReceived => A.PacketsReceived + B.PacketsReceived;

    /// <summary>Packets lost in either direction.</summary>
    public long PacketsDropped => A.PacketsDropped + B.PacketsDropped;

    /// <summary>Extra copies made by <see cref="MemoryLinkVerdict.Duplicate"/> in either direction.</summary>
    public long PacketsDuplicated => A.PacketsDuplicated + B.PacketsDuplicated;

    /// <summary>
    /// <see cref="MemoryLinkDeliveryMode.Manual"/> mode: delivers queued packets on the calling
    /// thread, in the order they were written across both directions, including packets that
    /// receivers write while this runs, until the queue is empty or
    /// <paramref name="maxPackets"/> have been handed over (a cap that stops runaway
    /// ping-pong).
    /// </summary>
    /// <returns>The number of packets handed to receivers.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxPackets"/> is below 1.</exception>
    /// <exception cref="InvalidOperationException">The link delivers in the background.</exception>
    /// <exception cref="ObjectDisposedException">The link has been disposed.</exception>
    public int DeliverPending(int maxPackets = 100_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPackets, 1);
        if (Delivery != MemoryLinkDeliveryMode.Manual)
        {
            throw new InvalidOperationException($"{nameof(DeliverPending)} is for {nameof(MemoryLinkDeliveryMode)}.{nameof(MemoryLinkDeliveryMode.Manual)} links.");
        }
        ObjectDisposedException.ThrowIf(_disposed, this);

        int delivered = 0;
        while (delivered < maxPackets)
        {
            LinkPacket packet;
            lock (_manualLock)
            {
                if (!_manualQueue.TryDequeue(out packet))
                {
                    break;
                }
                packet.Target.PendingCount--;
            }
            if (packet.Target.Deliver(packet))
            {
                delivered++;
            }
        }
        return delivered;
    }

    /// <summary>
    /// Packets queued now, in both directions.
    /// </summary>
    public int PendingCount
    {
        get
        {
            if (Delivery == MemoryLinkDeliveryMode.Manual)
            {
                lock (_manualLock)
                {
                    return _manualQueue.Count;
                }
            }
            return A.InboxCount + B.InboxCount;
        }
    }

    /// <summary>
    /// Stops the link: queued packets are discarded (counted as dropped), later writes are
    /// dropped, and the delivery threads end (waited for, unless called from one of them).
    /// Does not dispose the receivers. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (Delivery == MemoryLinkDeliveryMode.Manual)
        {
            lock (_manualLock)
            {
                while (_manualQueue.TryDequeue(out var packet))
                {
                    ArrayPool<byte>.Shared.Return(packet.Buffer);
                    packet.Target.CountDropped(1);
                    packet.Target.PendingCount--;
                }
            }
        }
        A.StopDelivery();
        B.StopDelivery();
    }

    /// <summary>Carries a packet written into <paramref name="from"/> toward its peer.</summary>
    internal void Transmit(MemoryLinkEnd from, ReadOnlySpan<byte> packet)
    {
        MemoryLinkEnd to = from.Peer;
        from.CountSent();
        if (_disposed || packet.Length > MaxPacketSize)
        {
            to.CountDropped(1);
            return;
        }

        var verdict = MemoryLinkVerdict.Deliver;
        var filter = _filter;
        if (filter is not null)
        {
            try
            {
                verdict = filter(from, packet);
            }
            catch (Exception e)
            {
                StackLog.LinkFilterFailed(_logger, e, from.Name);
                verdict = MemoryLinkVerdict.Drop;
            }
        }
        int copies = verdict switch
        {
            MemoryLinkVerdict.Deliver => 1,
            MemoryLinkVerdict.Duplicate => 2,
            _ => 0,
        };
        if (copies == 0)
        {
            to.CountDropped(1);
            return;
        }
        if (copies == 2)
        {
            to.CountDuplicated();
        }

        for (int i = 0; i < copies; i++)
        {
            byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(packet.Length, 1));
            packet.CopyTo(buffer);
            var queued = new LinkPacket(buffer, packet.Length, to);
            if (!(Delivery == MemoryLinkDeliveryMode.Manual ? TryEnqueueManual(queued) : to.TryEnqueue(queued)))
            {
                ArrayPool<byte>.Shared.Return(buffer);
                to.CountDropped(1);
            }
        }
    }

    /// <summary>Logs an exception thrown by <paramref name="end"/>'s receiver.</summary>
    internal void ReportReceiverFailure(Exception exception, MemoryLinkEnd end) => StackLog.LinkReceiverFailed(_logger, exception, end.Name);

    private bool TryEnqueueManual(in LinkPacket packet)
    {
        lock (_manualLock)
        {
            if (_disposed || packet.Target.PendingCount >= QueueCapacity)
            {
                return false;
            }
            _manualQueue.Enqueue(packet);
            packet.Target.PendingCount++;
            return true;
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"MemoryLink ({Delivery}): A sent {A.PacketsSent}, received {A.PacketsReceived}, dropped {A.PacketsDropped}; " +
        $"B sent {B.PacketsSent}, received {B.PacketsReceived}, dropped {B.PacketsDropped}";
}

/// <summary>A packet in flight: a pooled buffer (owned by whoever holds this value), its length, and the end it goes to.</summary>
internal readonly record struct LinkPacket(byte[] Buffer, int Length, MemoryLinkEnd Target);
