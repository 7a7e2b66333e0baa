using MeshNet.Userspace.Diagnostics;

namespace MeshNet.Userspace.Stack;

/// <summary>
/// Live counters of an <see cref="IpStack"/>: drops by reason and traffic totals. Reads are
/// lock-free snapshots of increasing values; thread-safe.
/// </summary>
public sealed class IpStackCounters
{
    private readonly ReasonCounters<StackDropReason> _drops = new();
    private long _packetsReceived;
    private long _packetsSent;
    private long _packetsDelivered;
    private long _datagramsReassembled;
    private long _fragmentsReassembled;
    private long _datagramsFragmented;
    private long _icmpEchoRepliesSent;
    private long _icmpErrorsSent;
    private long _icmpErrorsReceived;
    private long _udpDatagramsReceived;
    private long _udpDatagramsSent;
    private long _tcpRetransmissions;
    private long _tcpSpuriousRetransmissions;

    /// <summary>Packets dropped for <paramref name="reason"/>.</summary>
    public long this[StackDropReason reason] => _drops[reason];

    /// <summary>The sum of every drop counter.</summary>
    public long TotalDropped => _drops.Total;

    /// <summary>IP packets handed to the stack by its link.</summary>
    public long PacketsReceived => Volatile.Read(ref _packetsReceived);

    /// <summary>IP packets the stack handed to its link (each fragment counts once).</summary>
    public long PacketsSent => Volatile.Read(ref _packetsSent);

    /// <summary>
    /// IP datagrams that passed IP validation and were handed to ICMP, UDP or TCP: whole packets
    /// and reassembled datagrams. What the transport then does with them is counted by the
    /// transport. Every received packet ends up in exactly one place: dropped at the IP layer
    /// (counted by reason), delivered, or consumed by reassembly
    /// (<see cref="FragmentsReassembled"/>) or still held there; each reassembled datagram is then
    /// dropped or delivered in its turn.
    /// </summary>
    public long PacketsDelivered => Volatile.Read(ref _packetsDelivered);

    /// <summary>Fragmented datagrams completed by reassembly.</summary>
    public long DatagramsReassembled => Volatile.Read(ref _datagramsReassembled);

    /// <summary>Fragments consumed by completed reassemblies.</summary>
    public long FragmentsReassembled => Volatile.Read(ref _fragmentsReassembled);

    /// <summary>Outbound datagrams larger than the MTU, sent as fragments.</summary>
    public long DatagramsFragmented => Volatile.Read(ref _datagramsFragmented);

    /// <summary>ICMP and ICMPv6 echo replies sent.</summary>
    public long IcmpEchoRepliesSent => Volatile.Read(ref _icmpEchoRepliesSent);

    /// <summary>ICMP and ICMPv6 error messages sent (port unreachable, time exceeded...).</summary>
    public long IcmpErrorsSent => Volatile.Read(ref _icmpErrorsSent);

    /// <summary>Valid ICMP and ICMPv6 error messages received and passed to UDP or TCP.</summary>
    public long IcmpErrorsReceived => Volatile.Read(ref _icmpErrorsReceived);

    /// <summary>UDP datagrams handed to a socket (queued or given to a waiting receive).</summary>
    public long UdpDatagramsReceived => Volatile.Read(ref _udpDatagramsReceived);

    /// <summary>UDP datagrams sent by sockets.</summary>
    public long UdpDatagramsSent => Volatile.Read(ref _udpDatagramsSent);

    /// <summary>TCP segments sent again (any reason).</summary>
    public long TcpRetransmissions => Volatile.Read(ref _tcpRetransmissions);

    /// <summary>TCP retransmissions later found unnecessary (the original arrived: DSACK or timestamps).</summary>
    public long TcpSpuriousRetransmissions => Volatile.Read(ref _tcpSpuriousRetransmissions);

    /// <summary>Every drop counter that is not zero.</summary>
    public IReadOnlyDictionary<StackDropReason, long> DropsSnapshot() => _drops.Snapshot();

    /// <summary>A one-line summary, for logs and test failures.</summary>
    public override string ToString() =>
        $"received={PacketsReceived} delivered={PacketsDelivered} sent={PacketsSent} reassembled={DatagramsReassembled} retransmissions={TcpRetransmissions} spurious={TcpSpuriousRetransmissions} " +
        $"drops=[{_drops}]";

    internal void Drop(StackDropReason reason) => _drops.Increment(reason);

    internal void PacketReceived() => Interlocked.Increment(ref _packetsReceived);

    internal void PacketSent() => Interlocked.Increment(ref _packetsSent);

    internal void Drop(StackDropReason reason, int count) => _drops.Add(reason, count);

    internal void PacketDelivered() => Interlocked.Increment(ref _packetsDelivered);

    internal void DatagramReassembled(int fragments)
    {
        Interlocked.Add(ref _fragmentsReassembled, fragments);
        Interlocked.Increment(ref _datagramsReassembled);
    }

    internal void DatagramFragmented() => Interlocked.Increment(ref _datagramsFragmented);

    internal void IcmpEchoReplySent() => Interlocked.Increment(ref _icmpEchoRepliesSent);

    internal void IcmpErrorSent() => Interlocked.Increment(ref _icmpErrorsSent);

    internal void IcmpErrorReceived() => Interlocked.Increment(ref _icmpErrorsReceived);

    internal void UdpDatagramReceived() => Interlocked.Increment(ref _udpDatagramsReceived);

    internal void UdpDatagramSent() => Interlocked.Increment(ref _udpDatagramsSent);

    internal void TcpRetransmission() => Interlocked.Increment(ref _tcpRetransmissions);

    internal void TcpSpuriousRetransmission() => Interlocked.Increment(ref _tcpSpuriousRetransmissions);
}
