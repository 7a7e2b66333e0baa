using System.Buffers;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>State bits of a sent segment.</summary>
[Flags]
internal enum SentFlags : byte
{
    None = 0,

    /// <summary>The segment carries our FIN (its last sequence number).</summary>
    Fin = 1,

    /// <summary>The peer SACKed it.</summary>
    Sacked = 2,

    /// <summary>Deemed lost (RACK, RFC 6675 or an RTO) and not SACKed since.</summary>
    Lost = 4,

    /// <summary>A retransmission of it is in flight.</summary>
    Retrans = 8,

    /// <summary>Sent more than once (Karn: no RTT sample from its ACK).</summary>
    EverRetransmitted = 16,
}

/// <summary>One sent, unacknowledged segment.</summary>
internal struct SentSegment
{
    public uint Seq;
    public int Length;

    /// <summary>Time of the latest transmission (microseconds).</summary>
    public long XmitTime;

    /// <summary>Order of the latest transmission among all of the connection's transmissions (never ties).</summary>
    public long XmitOrder;

    public SentFlags Flags;

    public readonly uint End => Seq + (uint)Length;

    public readonly bool Has(SentFlags flag) => (Flags & flag) != 0;
}

/// <summary>
/// The sender's scoreboard (RFC 6675 §3): every sent and unacknowledged segment in sequence
/// order with its transmit time and SACKed/lost/retransmitted state, and running totals from
/// which the pipe is computed in O(1) as Linux does:
/// pipe = (SND.NXT - SND.UNA) - SACKed - lost + retransmitted-in-flight.
/// </summary>
/// <remarks>
/// A power-of-two ring of structs, rented from the array pool while non-empty (an idle
/// connection holds none). Not thread-safe: the owning connection's lock guards it.
/// </remarks>
internal sealed class RetransmitQueue
{
    private SentSegment[] _items = [];
    private int _head;

    public int Count { get; private set; }

    public long SackedBytes { get; private set; }

    public long LostBytes { get; private set; }

    public long RetransBytes { get; private set; }

    public int SackedSegments { get; private set; }

    /// <summary>End of the highest SACKed segment (meaningful when <see cref="SackedSegments"/> &gt; 0).</summary>
    public uint HighSacked { get; private set; }

    public ref SentSegment this[int index] => ref _items[(_head + index) & (_items.Length - 1)];

    public ref SentSegment Last => ref this[Count - 1];

    /// <summary>Appends a segment just sent for the first time.</summary>
    public void Add(uint seq, int length, bool fin, long now, long order)
    {
        if (Count == _items.Length)
        {
            Grow();
        }
        ref var item = ref _items[(_head + Count) & (_items.Length - 1)];
        item.Seq = seq;
        item.Length = length;
        item.XmitTime = now;
        item.XmitOrder = order;
        item.Flags = fin ? SentFlags.Fin : SentFlags.None;
        Count++;
    }

    private void Grow()
    {
        int size = Math.Max(16, _items.Length * 2);
        var items = ArrayPool<SentSegment>.Shared.Rent(size);
        if (!System.Numerics.BitOperations.IsPow2(items.Length))
        {
            ArrayPool<SentSegment>.Shared.Return(items);
            items = new SentSegment[size];
        }
        for (int i = 0; i < Count; i++)
        {
            items[i] = this[i];
        }
        ReturnArray();
        _items = items;
        _head = 0;
    }

    private void ReturnArray()
    {
        if (_items.Length > 0)
        {
            ArrayPool<SentSegment>.Shared.Return(_items);
        }
        _items = [];
    }

    /// <summary>Index of the segment containing <paramref name="seq"/>, or -1.</summary>
    public int Find(uint seq)
    {
        int low = 0;
        int high = Count - 1;
        while (low <= high)
        {
            int mid = (low + high) >>> 1;
            ref var item = ref this[mid];
            if (TcpSeq.Lt(seq, item.Seq))
            {
                high = mid - 1;
            }
            else if (TcpSeq.Ge(seq, item.End))
            {
                low = mid + 1;
            }
            else
            {
                return mid;
            }
        }
        return -1;
    }

    /// <summary>Index of the first segment ending after <paramref name="seq"/> (Count when none).</summary>
    public int FirstEndingAfter(uint seq)
    {
        int low = 0;
        int high = Count;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (TcpSeq.Le(this[mid].End, seq))
            {
                low = mid + 1;
            }
            else
            {
                high = mid;
            }
        }
        return low;
    }

    public void MarkSacked(int index)
    {
        ref var item = ref this[index];
        if (item.Has(SentFlags.Sacked))
        {
            return;
        }
        ClearLostAndRetrans(ref item);
        item.Flags |= SentFlags.Sacked;
        SackedBytes += item.Length;
        if (SackedSegments == 0 || TcpSeq.Gt(item.End, HighSacked))
        {
            HighSacked = item.End;
        }
        SackedSegments++;
    }

    /// <summary>Marks a segment lost; a retransmission of it that was in flight is deemed lost too.</summary>
    public void MarkLost(int index)
    {
        ref var item = ref this[index];
        if (item.Has(SentFlags.Sacked))
        {
            return;
        }
        if (item.Has(SentFlags.Retrans))
        {
            item.Flags &= ~SentFlags.Retrans;
            RetransBytes -= item.Length;
        }
        if (!item.Has(SentFlags.Lost))
        {
            item.Flags |= SentFlags.Lost;
            LostBytes += item.Length;
        }
    }

    /// <summary>Clears the lost mark (an undo: the segment was not lost after all).</summary>
    public void UnmarkLost(int index)
    {
        ref var item = ref this[index];
        if (item.Has(SentFlags.Lost))
        {
            item.Flags &= ~SentFlags.Lost;
            LostBytes -= item.Length;
        }
    }

    /// <summary>Records a retransmission of the segment at <paramref name="now"/>.</summary>
    public void MarkRetransmitted(int index, long now, long order)
    {
        ref var item = ref this[index];
        if (!item.Has(SentFlags.Retrans))
        {
            item.Flags |= SentFlags.Retrans;
            RetransBytes += item.Length;
        }
        item.Flags |= SentFlags.EverRetransmitted;
        item.XmitTime = now;
        item.XmitOrder = order;
    }

    /// <summary>Forgets every SACK mark (suspected reneging).</summary>
    public void ClearSacks()
    {
        for (int i = 0; i < Count; i++)
        {
            this[i].Flags &= ~SentFlags.Sacked;
        }
        SackedBytes = 0;
        SackedSegments = 0;
    }

    private void ClearLostAndRetrans(ref SentSegment item)
    {
        if (item.Has(SentFlags.Lost))
        {
            item.Flags &= ~SentFlags.Lost;
            LostBytes -= item.Length;
        }
        if (item.Has(SentFlags.Retrans))
        {
            item.Flags &= ~SentFlags.Retrans;
            RetransBytes -= item.Length;
        }
    }

    private void Uncount(in SentSegment item, int bytes)
    {
        if (item.Has(SentFlags.Sacked))
        {
            SackedBytes -= bytes;
        }
        if (item.Has(SentFlags.Lost))
        {
            LostBytes -= bytes;
        }
        if (item.Has(SentFlags.Retrans))
        {
            RetransBytes -= bytes;
        }
    }

    /// <summary>Removes the head segment (fully acknowledged).</summary>
    public void RemoveHead()
    {
        ref var item = ref this[0];
        Uncount(item, item.Length);
        if (item.Has(SentFlags.Sacked))
        {
            SackedSegments--;
        }
        _head = (_head + 1) & (_items.Length - 1);
        Count--;
        if (Count == 0)
        {
            _head = 0;
            SackedBytes = LostBytes = RetransBytes = 0;
            SackedSegments = 0;
            if (_items.Length > 64)
            {
                ReturnArray(); // idle connections hold no large scoreboard
            }
        }
    }

    /// <summary>Trims the head segment so it starts at <paramref name="seq"/> (a partial acknowledgment).</summary>
    public void TrimHead(uint seq)
    {
        ref var item = ref this[0];
        int delta = (int)(seq - item.Seq);
        Uncount(item, delta);
        item.Seq = seq;
        item.Length -= delta;
    }

    /// <summary>Drops everything (connection closed).</summary>
    public void Clear()
    {
        Count = 0;
        _head = 0;
        SackedBytes = LostBytes = RetransBytes = 0;
        SackedSegments = 0;
        ReturnArray();
    }

    /// <summary>Splits the segment at <paramref name="index"/> so the first part holds <paramref name="length"/> sequence numbers.</summary>
    public void Split(int index, int length)
    {
        if (Count == _items.Length)
        {
            Grow();
        }
        for (int i = Count; i > index + 1; i--)
        {
            this[i] = this[i - 1];
        }
        Count++;
        ref var first = ref this[index];
        ref var second = ref this[index + 1];
        second = first;
        second.Seq = first.Seq + (uint)length;
        second.Length = first.Length - length;
        first.Length = length;
        first.Flags &= ~SentFlags.Fin;
        if (first.Has(SentFlags.Sacked))
        {
            SackedSegments++;
        }
    }
}
