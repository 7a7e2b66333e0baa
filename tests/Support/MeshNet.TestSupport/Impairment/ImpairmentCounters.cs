namespace MeshNet.TestSupport.Impairment;

/// <summary>
/// Live counters of one direction of an <see cref="ImpairmentRelay"/>. Each value only grows;
/// reads are lock-free and may be mutually a little out of step while datagrams flow (take a
/// <see cref="Snapshot"/> after the traffic stopped for exact sums).
/// </summary>
public sealed class ImpairmentCounters
{
    private long _received;
    private long _forwarded;
    private long _dropped;
    private long _droppedLarge;
    private long _lossBursts;
    private long _duplicated;
    private long _reordered;
    private long _delayed;
    private long _noPeer;
    private long _sendErrors;

    /// <summary>The size from which a dropped datagram counts in <see cref="DroppedLarge"/>.</summary>
    public const int LargeDatagram = 256;

    /// <summary>Datagrams that arrived on the receiving side.</summary>
    public long Received => Volatile.Read(ref _received);

    /// <summary>Datagrams sent out of the other side (duplicates included).</summary>
    public long Forwarded => Volatile.Read(ref _forwarded);

    /// <summary>Datagrams dropped by random or bursty loss.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>
    /// Dropped datagrams of at least <see cref="LargeDatagram"/> bytes: in a WireGuard tunnel
    /// these carry data (keepalives and pure TCP ACKs are smaller).
    /// </summary>
    public long DroppedLarge => Volatile.Read(ref _droppedLarge);

    /// <summary>Runs of consecutive drops (so <see cref="Dropped"/> / this is the mean burst length).</summary>
    public long LossBursts => Volatile.Read(ref _lossBursts);

    /// <summary>Datagrams sent twice.</summary>
    public long Duplicated => Volatile.Read(ref _duplicated);

    /// <summary>Datagrams held back to be overtaken.</summary>
    public long Reordered => Volatile.Read(ref _reordered);

    /// <summary>Datagrams (copies included) that went through the timing stage with a non-zero delay.</summary>
    public long Delayed => Volatile.Read(ref _delayed);

    /// <summary>Datagrams dropped because the destination side had no peer yet.</summary>
    public long NoPeer => Volatile.Read(ref _noPeer);

    /// <summary>Sends the operating system refused (buffer full, unreachable...).</summary>
    public long SendErrors => Volatile.Read(ref _sendErrors);

    /// <summary>The mean length of a run of consecutive drops; 0 when nothing was dropped.</summary>
    public double MeanLossBurst => LossBursts == 0 ? 0 : (double)Dropped / LossBursts;

    /// <summary>A copy of every counter.</summary>
    public ImpairmentStats Snapshot() =>
        new(Received, Forwarded, Dropped, DroppedLarge, LossBursts, Duplicated, Reordered, Delayed, NoPeer, SendErrors);

    /// <inheritdoc />
    public override string ToString() => Snapshot().ToString();

    internal void OnReceived() => Interlocked.Increment(ref _received);

    internal void OnForwarded() => Interlocked.Increment(ref _forwarded);

    internal void OnDropped(int length, bool startsBurst)
    {
        Interlocked.Increment(ref _dropped);
        if (length >= LargeDatagram)
        {
            Interlocked.Increment(ref _droppedLarge);
        }
        if (startsBurst)
        {
            Interlocked.Increment(ref _lossBursts);
        }
    }

    internal void OnDuplicated() => Interlocked.Increment(ref _duplicated);

    internal void OnReordered() => Interlocked.Increment(ref _reordered);

    internal void OnDelayed() => Interlocked.Increment(ref _delayed);

    internal void OnNoPeer() => Interlocked.Increment(ref _noPeer);

    internal void OnSendError() => Interlocked.Increment(ref _sendErrors);
}
