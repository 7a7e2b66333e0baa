using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// TCP for one stack: parses inbound segments and hands them to their connection or listener,
/// answers segments for no connection with RST (RFC 9293 §3.10.7.1), and owns the connection
/// and listener tables, the page pool, ISN/SYN-cookie secrets and the ephemeral ports.
/// </summary>
/// <remarks>
/// Threading: <see cref="OnPacket"/> runs on the link's thread and takes only the lock of the
/// connection it delivers to. The tables are <see cref="ConcurrentDictionary{TKey,TValue}"/>
/// keyed by value-type tuples: lookups are lock-free; entries are added and removed on open and
/// close. <c>_bindLock</c> serialises what must be atomic across entries (choosing a free
/// ephemeral port and inserting the connection; creating and removing listeners); it is never
/// taken while holding a connection lock, and a connection lock is never awaited under it.
/// </remarks>
internal sealed partial class TcpLayer : ITransportHandler, IDisposable
{
    private readonly ConcurrentDictionary<TcpFlowKey, TcpControlBlock> _connections = new();
    private readonly ConcurrentDictionary<ListenKey, TcpListener> _listeners = new();
    private readonly ConcurrentQueue<TcpControlBlock> _timeWait = new();
    private readonly object _bindLock = new();
    private readonly long _timestampDivisor;
    private int _connectionCount;
    private volatile bool _disposed;

    public TcpLayer(StackContext context)
    {
        Context = context;
        Pages = new PagePool(1024);
        Buffers = new SegmentBufferPool(context.Mtu);
        Isn = new IsnGenerator(new SipHash(), context.Time);
        Cookies = new SynCookies(new SipHash(), new SipHash(), context.Time);
        _portHash = new SipHash();
        long frequency = context.Time.TimestampFrequency;
        _timestampDivisor = frequency % 1_000_000 == 0 ? frequency / 1_000_000 : 0;
    }

    public StackContext Context { get; }

    /// <summary>Free buffer pages shared by every connection.</summary>
    public PagePool Pages { get; }

    /// <summary>Buffers for outgoing segments.</summary>
    public SegmentBufferPool Buffers { get; }

    public IsnGenerator Isn { get; }

    public SynCookies Cookies { get; }

    /// <summary>Data segments acknowledged immediately at the start of a connection (Linux quick-ACK mode; speeds up slow start).</summary>
    public int QuickAckSegments { get; set; } = 16;

    /// <summary>Connections in the table (every state, TIME-WAIT included).</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>The connection with this 4-tuple, if any (tests and diagnostics).</summary>
    public TcpControlBlock? Find(in TcpFlowKey key) => _connections.TryGetValue(key, out var cb) ? cb : null;

    /// <summary>Every connection (tests and diagnostics).</summary>
    public ICollection<TcpControlBlock> Connections => _connections.Values;

    /// <summary>Microseconds on the stack clock.</summary>
    public long NowMicros()
    {
        long ticks = Context.Time.GetTimestamp();
        if (_timestampDivisor > 0)
        {
            return ticks / _timestampDivisor;
        }
        return (long)((Int128)ticks * 1_000_000 / Context.Time.TimestampFrequency);
    }

    /// <summary>The MSS we advertise for <paramref name="remote"/>: the largest TCP payload that fits the path without fragmentation.</summary>
    public int MssFor(NetAddress remote) => TcpControlBlock.AdvertisedMss(Context.Output, remote);

    public void OnPacket(in IpPacketInfo ip, Span<byte> payload)
    {
        try
        {
            var drop = TcpSegment.TryParse(ip.Source, ip.Destination, payload, out var segment);
            if (drop is { } reason)
            {
                Context.Counters.Drop(reason);
                return;
            }
            if (_disposed)
            {
                return;
            }
            Dispatch(ip.Destination, ip.Source, ref segment);
        }
        catch (Exception exception)
        {
            TcpLog.SegmentError(Context.Logger, exception);
        }
    }

    private void Dispatch(NetAddress local, NetAddress remote, ref TcpSegment segment)
    {
        var key = new TcpFlowKey(local, segment.DestinationPort, remote, segment.SourcePort);
        if (_connections.TryGetValue(key, out var cb))
        {
            bool newSynInTimeWait = segment.Syn && !segment.HasAck && FindListener(local, segment.DestinationPort) is not null &&
                cb.TryRetireTimeWaitForSyn(ref segment);
            if (!newSynInTimeWait && cb.OnSegment(ref segment))
            {
                return;
            }
        }
        if (FindListener(local, segment.DestinationPort) is { } listener)
        {
            OnListenerSegment(listener, key, ref segment);
            return;
        }
        Context.Counters.Drop(StackDropReason.TcpNoConnection);
        SendResetFor(key, ref segment);
    }

    /// <summary>
    /// RST for a segment that belongs to no connection (RFC 9293 §3.10.7.1): none for a RST;
    /// &lt;SEQ=SEG.ACK&gt;&lt;CTL=RST&gt; when it has an ACK; else
    /// &lt;SEQ=0&gt;&lt;ACK=SEG.SEQ+SEG.LEN&gt;&lt;CTL=RST,ACK&gt;.
    /// </summary>
    private void SendResetFor(in TcpFlowKey key, ref TcpSegment segment)
    {
        if (segment.Rst)
        {
            return;
        }
        if (segment.HasAck)
        {
            SendStateless(key, segment.Ack, 0, TcpFlags.Rst);
        }
        else
        {
            SendStateless(key, 0, segment.Seq + (uint)segment.SeqLength, TcpFlags.Rst | TcpFlags.Ack);
        }
    }

    /// <summary>Sends a header-only segment that belongs to no connection.</summary>
    private void SendStateless(in TcpFlowKey key, uint seq, uint ack, TcpFlags flags)
    {
        const int length = TcpSegment.HeaderLength;
        byte[] buffer = Buffers.Rent(IIpOutput.HeaderRoom + length);
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, length);
        TcpSegment.WriteHeader(packet, key.LocalPort, key.RemotePort, seq, ack, flags, 0, 0);
        TcpSegment.SetChecksum(packet, key.LocalAddress, key.RemoteAddress);
        Send(key, buffer, length);
    }

    private void Send(in TcpFlowKey key, byte[] buffer, int length)
    {
        try
        {
            Context.Output.Send(key.LocalAddress, key.RemoteAddress, TcpSegment.Protocol, buffer, length);
        }
        catch (Exception exception)
        {
            TcpLog.OutputError(Context.Logger, exception);
        }
        Buffers.Return(buffer);
    }

    public void OnIcmpError(IcmpErrorKind kind, int mtu, ReadOnlySpan<byte> quoted)
    {
        try
        {
            if (quoted.Length < 20)
            {
                return;
            }
            int version = quoted[0] >> 4;
            int headerLength;
            NetAddress source;
            NetAddress destination;
            if (version == 4)
            {
                headerLength = (quoted[0] & 0xF) * 4;
                if (quoted[9] != TcpSegment.Protocol || headerLength < 20 || quoted.Length < headerLength + 8)
                {
                    return;
                }
                source = NetAddress.FromBytes(quoted.Slice(12, 4));
                destination = NetAddress.FromBytes(quoted.Slice(16, 4));
            }
            else if (version == 6)
            {
                headerLength = 40;
                if (quoted.Length < 48 || quoted[6] != TcpSegment.Protocol)
                {
                    return;
                }
                source = NetAddress.FromBytes(quoted.Slice(8, 16));
                destination = NetAddress.FromBytes(quoted.Slice(24, 16));
            }
            else
            {
                return;
            }
            var tcp = quoted[headerLength..];
            var key = new TcpFlowKey(source, BinaryPrimitives.ReadUInt16BigEndian(tcp), destination, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
            if (_connections.TryGetValue(key, out var cb))
            {
                cb.OnIcmpError(kind, mtu, BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]));
            }
        }
        catch (Exception exception)
        {
            TcpLog.SegmentError(Context.Logger, exception);
        }
    }

    // ------------------------------------------------------------------ table

    /// <summary>Reserves a slot under <see cref="TcpStackOptions.MaxConnections"/>, evicting the oldest TIME-WAIT connection when full.</summary>
    private bool TryReserveConnection()
    {
        int max = Context.Tcp.MaxConnections;
        while (true)
        {
            int count = Volatile.Read(ref _connectionCount);
            if (count >= max)
            {
                if (EvictOldestTimeWait())
                {
                    continue;
                }
                Context.Counters.Drop(StackDropReason.TcpConnectionLimit);
                return false;
            }
            if (Interlocked.CompareExchange(ref _connectionCount, count + 1, count) == count)
            {
                return true;
            }
        }
    }

    private bool EvictOldestTimeWait()
    {
        while (_timeWait.TryDequeue(out var cb))
        {
            if (cb.ForceCloseTimeWait())
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Adds a connection whose slot was reserved; false (slot released) when the 4-tuple is taken.</summary>
    private bool TryInsert(TcpControlBlock cb)
    {
        if (_connections.TryAdd(cb.Key, cb))
        {
            return true;
        }
        Interlocked.Decrement(ref _connectionCount);
        return false;
    }

    /// <summary>Called by a connection as it closes: removes it from the table.</summary>
    public void Remove(TcpControlBlock cb, bool wasTimeWait)
    {
        if (_connections.TryRemove(new KeyValuePair<TcpFlowKey, TcpControlBlock>(cb.Key, cb)))
        {
            Interlocked.Decrement(ref _connectionCount);
        }
        _ = wasTimeWait;
    }

    /// <summary>Called by a connection entering TIME-WAIT: remembered (oldest first) for eviction when the table is full.</summary>
    public void OnTimeWait(TcpControlBlock cb)
    {
        while (_timeWait.TryPeek(out var head) && head.State != TcpState.TimeWait)
        {
            _timeWait.TryDequeue(out _); // prune entries that already expired
        }
        _timeWait.Enqueue(cb);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var cb in _connections.Values)
        {
            cb.Shutdown(); // silently: the link may already be gone
        }
        foreach (var listener in _listeners.Values)
        {
            listener.Dispose(); // its queued connections are already closed: no RST goes out
        }
    }
}
