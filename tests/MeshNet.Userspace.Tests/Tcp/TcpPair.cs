using System.Net;
using System.Security.Cryptography;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>Impairments of the simulated link, per direction.</summary>
internal sealed record LinkImpairment
{
    public TimeSpan Delay { get; init; } = TimeSpan.FromMilliseconds(10);
    public double Loss { get; init; }
    public double Duplicate { get; init; }

    /// <summary>Probability that a packet is held back by <see cref="ReorderDelay"/> (arriving after later ones).</summary>
    public double Reorder { get; init; }
    public TimeSpan ReorderDelay { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// When positive, a held-back packet is released right after the next <see cref="ReorderGap"/>
    /// packets of its direction have passed (as the interop tests' relay does), or after
    /// <see cref="ReorderDelay"/> at the latest.
    /// </summary>
    public int ReorderGap { get; init; }

    /// <summary>Bottleneck rate in bytes per second (0 = unlimited) and its queue (tail drop beyond).</summary>
    public long RateBytesPerSecond { get; init; }
    public long QueueBytes { get; init; } = 256 * 1024;
}

/// <summary>
/// Two real <see cref="TcpLayer"/>s joined by a simulated link on one fake clock: packets are
/// delivered in time order with delay, loss, duplication, reordering and an optional
/// bottleneck. Counts what the link dropped and, by comparing every data segment with the
/// copies sent before it, how many retransmissions were spurious (an earlier copy survived).
/// </summary>
internal sealed class TcpPair : IDisposable
{
    public static readonly NetAddress AddressA = NetAddress.Parse("10.1.0.1");
    public static readonly NetAddress AddressB = NetAddress.Parse("10.1.0.2");

    private readonly PriorityQueue<(TcpLayer To, NetAddress Source, NetAddress Destination, byte[] Packet, int From), (long, long)> _wire = new();
    private readonly Random _random;
    private readonly Dictionary<uint, (int Sent, int Dropped)>[] _copies = [new(), new()];
    private readonly long[] _linkFreeAt = new long[2];
    private readonly List<HeldPacket>[] _held = [[], []];
    private long _order;

    /// <summary>A packet held back to be overtaken by <see cref="Remaining"/> more (gap reordering).</summary>
    private sealed record HeldPacket(TcpLayer To, NetAddress Source, NetAddress Destination, byte[] Packet, int From, long Deadline)
    {
        public int Remaining { get; set; }
    }

    public TcpPair(LinkImpairment? aToB = null, LinkImpairment? bToA = null, Action<TcpStackOptions>? configure = null, int mtu = 1420, int seed = 1)
    {
        _random = new Random(seed);
        ImpairmentAToB = aToB ?? new LinkImpairment();
        ImpairmentBToA = bToA ?? new LinkImpairment();
        _mtu = mtu;
        A = CreateLayer(AddressA, configure, mtu, 0);
        B = CreateLayer(AddressB, configure, mtu, 1);
    }

    private readonly int _mtu;

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public TcpLayer A { get; }

    public TcpLayer B { get; }

    public LinkImpairment ImpairmentAToB { get; set; }

    public LinkImpairment ImpairmentBToA { get; set; }

    public long Delivered { get; private set; }

    public long Dropped { get; private set; }

    /// <summary>Data segments from A that B's TCP discarded on arrival (counted as drops for the ground truth).</summary>
    public long ReceiverDiscarded { get; private set; }

    /// <summary>Data segments dropped by the link (A to B).</summary>
    public long DataDropped { get; private set; }

    /// <summary>Retransmissions A sent whose earlier copy was not dropped (ground truth).</summary>
    public long SpuriousRetransmissions { get; private set; }

    /// <summary>Data segments A sent more than once (ground truth).</summary>
    public long Retransmissions { get; private set; }

    /// <summary>Packets held back to be overtaken (A to B).</summary>
    public long Reordered { get; private set; }

    /// <summary>Packets either end sent that exceed the link MTU (they would be fragmented).</summary>
    public long Oversized { get; private set; }

    private TcpLayer CreateLayer(NetAddress address, Action<TcpStackOptions>? configure, int mtu, int index)
    {
        var tcp = new TcpStackOptions();
        configure?.Invoke(tcp);
        tcp.Validate();
        var options = new IpStackOptions { Addresses = [address.ToIPAddress()], Mtu = mtu, TimeProvider = Time, Tcp = tcp };
        var output = new RecordingOutput(mtu) { Forward = (source, destination, packet) => Transmit(index, source, destination, packet) };
        var context = new StackContext(options, NullLogger.Instance) { Output = output };
        return new TcpLayer(context);
    }

    private long NowTicks => Time.GetUtcNow().UtcTicks;

    private void Transmit(int from, NetAddress source, NetAddress destination, byte[] packet)
    {
        var impairment = from == 0 ? ImpairmentAToB : ImpairmentBToA;
        var to = from == 0 ? B : A;
        if (packet.Length > _mtu - 20)
        {
            Oversized++;
        }
        bool isData = packet.Length > ((packet[12] >> 4) * 4);
        uint seq = (uint)((packet[4] << 24) | (packet[5] << 16) | (packet[6] << 8) | packet[7]);
        bool drop = _random.NextDouble() < impairment.Loss;
        long now = NowTicks;
        long departure = now;
        if (!drop && impairment.RateBytesPerSecond > 0)
        {
            long free = Math.Max(_linkFreeAt[from], now);
            long backlog = (free - now) * impairment.RateBytesPerSecond / TimeSpan.TicksPerSecond;
            if (backlog + packet.Length > impairment.QueueBytes)
            {
                drop = true;
            }
            else
            {
                departure = free + (packet.Length * TimeSpan.TicksPerSecond / impairment.RateBytesPerSecond);
                _linkFreeAt[from] = departure;
            }
        }
        if (isData && from == 0)
        {
            var copies = _copies[from];
            copies.TryGetValue(seq, out var record);
            if (record.Sent > 0)
            {
                Retransmissions++;
                if (record.Sent > record.Dropped)
                {
                    SpuriousRetransmissions++;
                }
            }
            copies[seq] = (record.Sent + 1, record.Dropped + (drop ? 1 : 0));
            if (drop)
            {
                DataDropped++;
            }
        }
        if (drop)
        {
            Dropped++;
            return;
        }
        long deliverAt = departure + impairment.Delay.Ticks;
        bool reorder = _random.NextDouble() < impairment.Reorder;
        if (reorder && from == 0)
        {
            Reordered++;
        }
        if (reorder && impairment.ReorderGap > 0)
        {
            _held[from].Add(new HeldPacket(to, source, destination, packet, from, deliverAt + impairment.ReorderDelay.Ticks) { Remaining = impairment.ReorderGap });
            return;
        }
        if (reorder)
        {
            deliverAt += impairment.ReorderDelay.Ticks;
        }
        _wire.Enqueue((to, source, destination, packet, from), (deliverAt, _order++));
        ReleaseOvertaken(from, deliverAt);
        if (_random.NextDouble() < impairment.Duplicate)
        {
            _wire.Enqueue((to, source, destination, packet, from + 2), (deliverAt + TimeSpan.TicksPerMillisecond, _order++)); // +2: a network duplicate
        }
    }

    /// <summary>Another packet passed the held ones of its direction: those it completes the gap of follow it.</summary>
    private void ReleaseOvertaken(int from, long deliverAt)
    {
        var held = _held[from];
        for (int i = 0; i < held.Count; i++)
        {
            var packet = held[i];
            if (--packet.Remaining == 0)
            {
                _wire.Enqueue((packet.To, packet.Source, packet.Destination, packet.Packet, packet.From), (Math.Max(deliverAt, packet.Deadline - ImpairmentFor(from).ReorderDelay.Ticks), _order++));
                held.RemoveAt(i--);
            }
        }
    }

    private LinkImpairment ImpairmentFor(int from) => from == 0 ? ImpairmentAToB : ImpairmentBToA;

    /// <summary>Releases held packets whose longest hold ends by <paramref name="until"/>.</summary>
    private void ReleaseExpired(long until)
    {
        foreach (var held in _held)
        {
            for (int i = 0; i < held.Count; i++)
            {
                var packet = held[i];
                if (packet.Deadline <= until)
                {
                    _wire.Enqueue((packet.To, packet.Source, packet.Destination, packet.Packet, packet.From), (packet.Deadline, _order++));
                    held.RemoveAt(i--);
                }
            }
        }
    }

    /// <summary>Delivers every packet due now; returns how many.</summary>
    public int DeliverDue()
    {
        int count = 0;
        long now = NowTicks;
        while (_wire.TryPeek(out var item, out var priority) && priority.Item1 <= now)
        {
            _wire.Dequeue();
            long dropsBefore = item.To.Context.Counters.TotalDropped;
            item.To.OnPacket(new IpPacketInfo(item.Source, item.Destination, TcpSegment.Protocol, 64, 0, item.Packet), item.Packet);
            if (item.From == 0 && item.To.Context.Counters.TotalDropped > dropsBefore && item.Packet.Length > ((item.Packet[12] >> 4) * 4))
            {
                // The receiver discarded this copy (PAWS, window, memory): a later copy is not spurious.
                uint seq = (uint)((item.Packet[4] << 24) | (item.Packet[5] << 16) | (item.Packet[6] << 8) | item.Packet[7]);
                if (_copies[0].TryGetValue(seq, out var record))
                {
                    _copies[0][seq] = (record.Sent, record.Dropped + 1);
                }
                ReceiverDiscarded++;
            }
            Delivered++;
            count++;
        }
        return count;
    }

    /// <summary>Moves time to the next delivery, at most <paramref name="maxStep"/> ahead (timers fire on the way).</summary>
    public void Step(TimeSpan maxStep)
    {
        long now = NowTicks;
        long target = now + maxStep.Ticks;
        ReleaseExpired(target);
        if (_wire.TryPeek(out _, out var priority) && priority.Item1 < target)
        {
            target = Math.Max(priority.Item1, now);
        }
        if (target > now)
        {
            Time.Advance(TimeSpan.FromTicks(target - now));
        }
        DeliverDue();
    }

    /// <summary>Runs until <paramref name="done"/> or the simulated time limit; returns false on timeout.</summary>
    public bool RunUntil(Func<bool> done, TimeSpan limit, Action? each = null)
    {
        var end = Time.GetUtcNow() + limit;
        while (!done())
        {
            if (Time.GetUtcNow() >= end)
            {
                return false;
            }
            each?.Invoke();
            if (done())
            {
                break;
            }
            Step(TimeSpan.FromMilliseconds(1));
            each?.Invoke();
        }
        return true;
    }

    /// <summary>A connects to B's listener; returns both ends once established.</summary>
    public (TcpControlBlock Client, TcpControlBlock Server) Connect(ushort port = 5000)
    {
        using var listener = B.Listen(new IPEndPoint(AddressB.ToIPAddress(), port), 16);
        var client = A.Connect(null, new IPEndPoint(AddressB.ToIPAddress(), port));
        RunUntil(() => client.State == TcpState.Established && listener.PendingCount > 0, TimeSpan.FromSeconds(30)).Should().BeTrue("the handshake completes");
        var server = listener.AcceptAsync().AsTask().GetAwaiter().GetResult().ControlBlock;
        return (client, server);
    }

    /// <summary>
    /// Sends <paramref name="length"/> deterministic bytes from <paramref name="sender"/> to
    /// <paramref name="receiver"/>, then half-closes; returns the SHA-256 of what arrived (until
    /// EOF) and of what was sent.
    /// </summary>
    public (byte[] Sent, byte[] Received, bool Completed) Transfer(TcpControlBlock sender, TcpControlBlock receiver, long length, TimeSpan limit,
        int readChunk = 256 * 1024, Func<bool>? readerPaused = null)
    {
        using var sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var source = new byte[64 * 1024];
        new Random(42).NextBytes(source);
        var buffer = new byte[readChunk];
        long written = 0;
        long sourceOffset = 0;
        bool shut = false;
        bool eof = false;
        bool completed = RunUntil(() => eof, limit, () =>
        {
            while (written < length)
            {
                int chunk = (int)Math.Min(length - written, source.Length - sourceOffset);
                int n = sender.TryWrite(source.AsSpan((int)sourceOffset, chunk));
                if (n == 0)
                {
                    break;
                }
                sentHash.AppendData(source, (int)sourceOffset, n);
                written += n;
                sourceOffset = (sourceOffset + n) % source.Length;
            }
            if (written == length && !shut)
            {
                sender.ShutdownWrite();
                shut = true;
            }
            if (readerPaused?.Invoke() == true)
            {
                return;
            }
            while (!eof)
            {
                int n = receiver.TryRead(buffer);
                if (n < 0)
                {
                    break;
                }
                if (n == 0)
                {
                    eof = true;
                    break;
                }
                receivedHash.AppendData(buffer, 0, n);
            }
        });
        return (sentHash.GetHashAndReset(), receivedHash.GetHashAndReset(), completed);
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
