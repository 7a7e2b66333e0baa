using System.Collections.Concurrent;
using MeshNet.Userspace.Stack;

namespace MeshNet.Filter;

/// <summary>
/// The flows this node opened (connection tracking), so that the inbound filter admits their
/// replies and the ICMP errors about them without any rule. Flows are learnt from the datagrams
/// the stack sends: a TCP SYN without ACK, a UDP datagram, an ICMP echo request. A flow expires
/// when idle (<see cref="ConnectionTrackingOptions"/>; TCP after RST or FIN both ways lingers
/// briefly); the table holds at most <see cref="ConnectionTrackingOptions.MaxFlows"/> flows
/// (the oldest-created is evicted, counted in <see cref="Evictions"/>).
/// </summary>
/// <remarks>
/// <para>Thread safety: every member may be called concurrently. Lookups and per-packet updates
/// are lock-free and allocation-free; creating and removing flows takes one lock (a new flow
/// allocates its entry). Expiry uses the injected <see cref="TimeProvider"/>: expired flows are
/// ignored at once and removed by a periodic sweep. After <see cref="Dispose"/> the sweep stops;
/// the table still answers.</para>
/// </remarks>
internal sealed class ConnectionTracker : IDisposable
{
    private const byte Icmp = 1;
    private const byte Tcp = 6;
    private const byte Udp = 17;
    private const byte IcmpV6 = 58;

    private readonly TimeProvider _time;
    private readonly ConnectionTrackingOptions _options;
    private readonly ConcurrentDictionary<FlowTuple, TrackedFlow> _flows = new();
    private readonly ITimer _sweep;
    private readonly TimeSpan _sweepInterval;
    private readonly long _tcpOpening;
    private readonly long _tcpIdle;
    private readonly long _tcpLinger;
    private readonly long _udpIdle;
    private readonly long _echoIdle;
    private readonly Lock _lock = new();
    private TrackedFlow? _oldest;  // guarded by _lock
    private TrackedFlow? _newest;  // guarded by _lock
    private long _evictions;

    public ConnectionTracker(TimeProvider time, ConnectionTrackingOptions options)
    {
        _time = time;
        _options = options;
        _tcpOpening = Ticks(options.TcpOpening);
        _tcpIdle = Ticks(options.TcpIdle);
        _tcpLinger = Ticks(options.TcpClosingLinger);
        _udpIdle = Ticks(options.UdpIdle);
        _echoIdle = Ticks(options.IcmpEchoIdle);
        // One-shot, re-armed at each tick: a clock that jumps ahead gives one sweep, not one per interval skipped.
        _sweepInterval = options.SweepInterval;
        _sweep = time.CreateTimer(static state => ((ConnectionTracker)state!).OnSweepTimer(), this, _sweepInterval, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Flows in the table (expired ones included until the next sweep).</summary>
    public int Count => _flows.Count;

    /// <summary>Flows evicted because the table was full.</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Learns from a datagram the stack sends.</summary>
    public void OnSent(in DatagramHeaders datagram)
    {
        if (datagram.IsTruncated)
        {
            return;
        }
        var flow = datagram.Flow;
        long now = _time.GetTimestamp();
        switch (flow.Protocol)
        {
            case Tcp:
                var existing = Find(flow, now);
                if (datagram.IsTcpConnectionRequest)
                {
                    if (existing is null)
                    {
                        Add(flow, openedHere: true, now);
                    }
                    else if (existing.OpenedHere)
                    {
                        existing.Restart(); // a new connection on a lingering tuple
                        existing.Touch(now);
                    }
                    return;
                }
                if (existing is not null)
                {
                    existing.Touch(now);
                    existing.AddState(TcpBits(datagram.TcpFlags, TrackedFlow.FinSent));
                }
                return;
            case Udp:
                if (Find(flow, now) is { } udp)
                {
                    udp.Touch(now);
                }
                else
                {
                    Add(flow, openedHere: true, now);
                }
                return;
            case Icmp:
            case IcmpV6:
                if (datagram.IsIcmpEchoRequest)
                {
                    if (Find(flow, now) is { } echo)
                    {
                        echo.Touch(now);
                    }
                    else
                    {
                        Add(flow, openedHere: true, now);
                    }
                }
                return;
        }
    }

    /// <summary>
    /// True when the inbound <paramref name="datagram"/> is a reply in a flow this node opened
    /// (TCP, UDP, ICMP echo reply); the flow is refreshed and TCP FIN/RST noted.
    /// </summary>
    public bool TryAdmitReply(in DatagramHeaders datagram)
    {
        var flow = datagram.Flow;
        if (flow.Protocol is Icmp or IcmpV6 && !datagram.IsIcmpEchoReply)
        {
            return false;
        }
        long now = _time.GetTimestamp();
        if (Find(flow.Reversed(), now) is not { OpenedHere: true } tracked)
        {
            return false;
        }
        tracked.Touch(now);
        if (flow.Protocol == Tcp)
        {
            tracked.AddState(TrackedFlow.Answered | TcpBits(datagram.TcpFlags, TrackedFlow.FinReceived));
        }
        return true;
    }

    /// <summary>True when <paramref name="sent"/> (a flow as this node sends it, e.g. quoted in an ICMP error) is one this node opened.</summary>
    public bool IsOpenedHere(in FlowTuple sent) => Find(sent, _time.GetTimestamp()) is { OpenedHere: true };

    /// <summary>
    /// Records a UDP flow a peer opened under the rules (<paramref name="sent"/>: as this node
    /// would answer it), unless known, so that answering it does not make it one of ours.
    /// </summary>
    public void NotePeerOpened(in FlowTuple sent)
    {
        long now = _time.GetTimestamp();
        if (Find(sent, now) is { } existing)
        {
            if (!existing.OpenedHere)
            {
                existing.Touch(now);
            }
            return;
        }
        Add(sent, openedHere: false, now);
    }

    /// <summary>Removes expired flows (runs on the timer; callable from tests).</summary>
    public void Sweep()
    {
        long now = _time.GetTimestamp();
        lock (_lock)
        {
            for (var flow = _oldest; flow is not null;)
            {
                var next = flow.Next;
                if (IsExpired(flow, now))
                {
                    Remove(flow);
                }
                flow = next;
            }
        }
    }

    public void Dispose() => _sweep.Dispose();

    private void OnSweepTimer()
    {
        try
        {
            _sweep.Change(_sweepInterval, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        Sweep();
    }

    private TrackedFlow? Find(in FlowTuple key, long now) =>
        _flows.TryGetValue(key, out var flow) && !IsExpired(flow, now) ? flow : null;

    private void Add(in FlowTuple key, bool openedHere, long now)
    {
        lock (_lock)
        {
            if (_flows.TryGetValue(key, out var current))
            {
                if (!IsExpired(current, now))
                {
                    return; // another thread was first
                }
                Remove(current);
            }
            while (_flows.Count >= _options.MaxFlows && _oldest is not null)
            {
                Remove(_oldest);
                Interlocked.Increment(ref _evictions);
            }
            var flow = new TrackedFlow(key, openedHere, now);
            _flows[key] = flow;
            flow.Previous = _newest;
            if (_newest is not null)
            {
                _newest.Next = flow;
            }
            else
            {
                _oldest = flow;
            }
            _newest = flow;
            flow.Linked = true;
        }
    }

    // Caller holds _lock.
    private void Remove(TrackedFlow flow)
    {
        if (!flow.Linked)
        {
            return;
        }
        flow.Linked = false;
        _flows.TryRemove(new KeyValuePair<FlowTuple, TrackedFlow>(flow.Key, flow));
        if (flow.Previous is not null)
        {
            flow.Previous.Next = flow.Next;
        }
        else
        {
            _oldest = flow.Next;
        }
        if (flow.Next is not null)
        {
            flow.Next.Previous = flow.Previous;
        }
        else
        {
            _newest = flow.Previous;
        }
        flow.Previous = flow.Next = null;
    }

    private bool IsExpired(TrackedFlow flow, long now) => now - flow.LastSeen >= TimeoutOf(flow);

    private long TimeoutOf(TrackedFlow flow)
    {
        switch (flow.Key.Protocol)
        {
            case Tcp:
                int state = flow.State;
                if ((state & TrackedFlow.Reset) != 0 || (state & (TrackedFlow.FinSent | TrackedFlow.FinReceived)) == (TrackedFlow.FinSent | TrackedFlow.FinReceived))
                {
                    return _tcpLinger;
                }
                return (state & TrackedFlow.Answered) != 0 ? _tcpIdle : _tcpOpening;
            case Udp:
                return _udpIdle;
            default:
                return _echoIdle;
        }
    }

    private static int TcpBits(byte flags, int finBit) =>
        ((flags & DatagramHeaders.TcpFin) != 0 ? finBit : 0) | ((flags & DatagramHeaders.TcpRst) != 0 ? TrackedFlow.Reset : 0);

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);
}
