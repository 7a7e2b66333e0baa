namespace MeshNet.Userspace.Stack;

/// <summary>
/// Live counters of an <see cref="IpStack"/>: drops by reason and traffic totals. Reads are
/// lock-free snapshots of increasing values; thread-safe.
/// </summary>
public sealed class IpStackCounters
{
    private static readonly int ReasonCount = Enum.GetValues<StackDropReason>().Length;

    private readonly long[] _drops = new long[ReasonCount];
    private long _packetsReceived;
    private long _packetsSent;
    private long _tcpRetransmissions;
    private long _tcpSpuriousRetransmissions;

    /// <summary>Packets dropped for <paramref name="reason"/>.</summary>
    public long this[StackDropReason reason] => Volatile.Read(ref _drops[(int)reason]);

    /// <summary>The sum of every drop counter.</summary>
    public long TotalDropped
    {
        get
        {
            long total = 0;
            for (int i = 0; i < _drops.Length; i++)
            {
                total += Volatile.Read(ref _drops[i]);
            }
            return total;
        }
    }

    /// <summary>IP packets handed to the stack by its link.</summary>
    public long PacketsReceived => Volatile.Read(ref _packetsReceived);

    /// <summary>IP packets the stack handed to its link.</summary>
    public long PacketsSent => Volatile.Read(ref _packetsSent);

    /// <summary>TCP segments sent again (any reason).</summary>
    public long TcpRetransmissions => Volatile.Read(ref _tcpRetransmissions);

    /// <summary>TCP retransmissions later found unnecessary (the original arrived: DSACK or timestamps).</summary>
    public long TcpSpuriousRetransmissions => Volatile.Read(ref _tcpSpuriousRetransmissions);

    /// <summary>Every drop counter that is not zero.</summary>
    public IReadOnlyDictionary<StackDropReason, long> DropsSnapshot()
    {
        var result = new Dictionary<StackDropReason, long>();
        foreach (var reason in Enum.GetValues<StackDropReason>())
        {
            long value = this[reason];
            if (value != 0)
            {
                result[reason] = value;
            }
        }
        return result;
    }

    /// <summary>A one-line summary, for logs and test failures.</summary>
    public override string ToString() =>
        $"received={PacketsReceived} sent={PacketsSent} retransmissions={TcpRetransmissions} spurious={TcpSpuriousRetransmissions} " +
        $"drops=[{string.Join(", ", DropsSnapshot().Select(pair => $"{pair.Key}={pair.Value}"))}]";

    internal void Drop(StackDropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);

    internal void PacketReceived() => Interlocked.Increment(ref _packetsReceived);

    internal void PacketSent() => Interlocked.Increment(ref _packetsSent);

    internal void TcpRetransmission() => Interlocked.Increment(ref _tcpRetransmissions);

    internal void TcpSpuriousRetransmission() => Interlocked.Increment(ref _tcpSpuriousRetransmissions);
}
