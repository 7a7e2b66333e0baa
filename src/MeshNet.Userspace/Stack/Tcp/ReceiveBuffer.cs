using System.Buffers;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>What storing one segment's data did.</summary>
[Flags]
internal enum ReceiveOutcome
{
    None = 0,

    /// <summary>In-order data was added (RCV.NXT advanced).</summary>
    Advanced = 1,

    /// <summary>The data closed a gap: out-of-order data became in-order.</summary>
    FilledHole = 2,

    /// <summary>Data was stored beyond a gap.</summary>
    OutOfOrder = 4,

    /// <summary>Some or all of the data was already held (a D-SACK range is reported).</summary>
    Duplicate = 8,

    /// <summary>The stack's memory budget refused the pages: nothing stored.</summary>
    NoMemory = 16,

    /// <summary>Too many separate out-of-order ranges: nothing stored.</summary>
    TooManyRanges = 32,
}

/// <summary>
/// A connection's receive buffer: in-order data waiting for the application and out-of-order
/// data, both stored in place at their stream offsets (offset 0 is the byte after the peer's
/// SYN), so every byte is copied once in and once out and reassembly moves nothing. Tracks the
/// out-of-order ranges (at most <see cref="MaxRanges"/>) with the recency needed for SACK
/// blocks (RFC 2018 §4: the block with the latest segment first, then the most recently
/// changed).
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal sealed class ReceiveBuffer(PagePool pool, MemoryBudget budget)
{
    /// <summary>Separate out-of-order ranges held at most; a segment that would add another is dropped.</summary>
    public const int MaxRanges = 256;

    private struct Range
    {
        public long Start;
        public long End;
        public long Stamp;
    }

    private readonly PagedBuffer _data = new(pool, budget);
    private Range[]? _ranges;
    private int _rangeCount;
    private long _stamp;

    /// <summary>Offset of the next byte the application reads.</summary>
    public long ReadOffset { get; private set; }

    /// <summary>Offset just past the in-order data (RCV.NXT for data).</summary>
    public long End { get; private set; }

    /// <summary>In-order bytes the application has not read.</summary>
    public long Available => End - ReadOffset;

    /// <summary>Separate out-of-order ranges held.</summary>
    public int RangeCount => _rangeCount;

    /// <summary>Offset just past the highest data held (in order or not).</summary>
    public long HighestEnd => _rangeCount > 0 ? _ranges![_rangeCount - 1].End : End;

    /// <summary>Bytes reserved against the stack budget.</summary>
    public long ReservedBytes => _data.ReservedBytes;

    /// <summary>Pages held.</summary>
    public int PageCount => _data.PageCount;

    /// <summary>Start and end of the last duplicate range seen by <see cref="Store"/>.</summary>
    public (long Start, long End) LastDuplicate { get; private set; }

    /// <summary>
    /// Stores <paramref name="data"/> found at <paramref name="offset"/>. The caller has trimmed
    /// it to the receive window; the part below <see cref="End"/> (already delivered) or inside
    /// a held range is a duplicate, reported through <see cref="LastDuplicate"/>.
    /// </summary>
    public ReceiveOutcome Store(long offset, ReadOnlySpan<byte> data)
    {
        var outcome = ReceiveOutcome.None;
        long end = offset + data.Length;
        if (offset < End)
        {
            LastDuplicate = (offset, Math.Min(end, End));
            outcome |= ReceiveOutcome.Duplicate;
            if (end <= End)
            {
                return outcome;
            }
            data = data[(int)(End - offset)..];
            offset = End;
        }
        if (data.IsEmpty)
        {
            return outcome;
        }
        if (offset == End)
        {
            if (!_data.TryWrite(offset, data))
            {
                return ReceiveOutcome.NoMemory;
            }
            End = end;
            outcome |= ReceiveOutcome.Advanced;
            if (_rangeCount > 0 && _ranges![0].Start <= End)
            {
                outcome |= ReceiveOutcome.FilledHole;
                int merged = 0;
                while (merged < _rangeCount && _ranges[merged].Start <= End)
                {
                    End = Math.Max(End, _ranges[merged].End);
                    merged++;
                }
                RemoveRanges(0, merged);
            }
            return outcome;
        }
        // Out of order: find the ranges it touches.
        int first = 0;
        while (first < _rangeCount && _ranges![first].End < offset)
        {
            first++;
        }
        if (first < _rangeCount && _ranges![first].Start <= offset && _ranges[first].End >= end)
        {
            LastDuplicate = (offset, end);
            _ranges[first].Stamp = ++_stamp;
            return outcome | ReceiveOutcome.Duplicate;
        }
        int last = first;
        while (last < _rangeCount && _ranges![last].Start <= end)
        {
            last++;
        }
        // Ranges [first, last) overlap or touch the new data and merge with it.
        if (last == first && _rangeCount == MaxRanges)
        {
            return ReceiveOutcome.TooManyRanges;
        }
        if (!_data.TryWrite(offset, data))
        {
            return ReceiveOutcome.NoMemory;
        }
        outcome |= ReceiveOutcome.OutOfOrder;
        var range = new Range { Start = offset, End = end, Stamp = ++_stamp };
        if (last > first)
        {
            range.Start = Math.Min(range.Start, _ranges![first].Start);
            range.End = Math.Max(range.End, _ranges[last - 1].End);
            _ranges[first] = range;
            RemoveRanges(first + 1, last - first - 1);
        }
        else
        {
            InsertRange(first, range);
        }
        return outcome;
    }

    private void InsertRange(int index, Range range)
    {
        if (_ranges is null)
        {
            _ranges = new Range[4];
        }
        else if (_rangeCount == _ranges.Length)
        {
            Array.Resize(ref _ranges, Math.Min(MaxRanges, _ranges.Length * 2));
        }
        Array.Copy(_ranges, index, _ranges, index + 1, _rangeCount - index);
        _ranges[index] = range;
        _rangeCount++;
    }

    private void RemoveRanges(int index, int count)
    {
        if (count == 0)
        {
            return;
        }
        Array.Copy(_ranges!, index + count, _ranges!, index, _rangeCount - index - count);
        _rangeCount -= count;
        if (_rangeCount == 0)
        {
            _ranges = null; // an idle connection holds no range array
        }
    }

    /// <summary>True when [start, end) lies inside data already held (delivered or out of order).</summary>
    public bool Holds(long start, long end)
    {
        if (end <= End)
        {
            return true;
        }
        for (int i = 0; i < _rangeCount; i++)
        {
            if (_ranges![i].Start <= start && _ranges[i].End >= end)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The out-of-order range containing <paramref name="offset"/>, if any.</summary>
    public bool TryGetRangeContaining(long offset, out long start, out long end)
    {
        for (int i = 0; i < _rangeCount; i++)
        {
            if (_ranges![i].Start <= offset && offset < _ranges[i].End)
            {
                start = _ranges[i].Start;
                end = _ranges[i].End;
                return true;
            }
        }
        start = end = 0;
        return false;
    }

    /// <summary>
    /// Writes up to <paramref name="max"/> out-of-order ranges, most recently changed first, as
    /// (start, end) offset pairs into <paramref name="pairs"/>; returns how many.
    /// </summary>
    public int GetSackRanges(Span<long> pairs, int max)
    {
        int count = Math.Min(max, _rangeCount);
        long below = long.MaxValue;
        for (int n = 0; n < count; n++)
        {
            int best = -1;
            for (int i = 0; i < _rangeCount; i++)
            {
                long stamp = _ranges![i].Stamp;
                if (stamp < below && (best < 0 || stamp > _ranges[best].Stamp))
                {
                    best = i;
                }
            }
            pairs[n * 2] = _ranges![best].Start;
            pairs[(n * 2) + 1] = _ranges[best].End;
            below = _ranges[best].Stamp;
        }
        return count;
    }

    /// <summary>Copies up to destination.Length in-order bytes to the application; returns how many.</summary>
    public int Read(Span<byte> destination)
    {
        int count = (int)Math.Min(destination.Length, Available);
        if (count > 0)
        {
            _data.CopyTo(ReadOffset, destination[..count]);
            Consume(ReadOffset + count);
        }
        return count;
    }

    /// <summary>Copies in-order bytes at the read position without consuming them.</summary>
    public int Peek(Span<byte> destination)
    {
        int count = (int)Math.Min(destination.Length, Available);
        _data.CopyTo(ReadOffset, destination[..count]);
        return count;
    }

    /// <summary>The unread in-order data as a sequence over the buffer's pages (valid until consumed).</summary>
    public ReadOnlySequence<byte> GetSequence() => _data.GetSequence(ReadOffset, End);

    /// <summary>Marks in-order data up to <paramref name="offset"/> as read and frees the pages below it.</summary>
    public void Consume(long offset)
    {
        System.Diagnostics.Debug.Assert(offset >= ReadOffset && offset <= End, "consume outside the readable range");
        ReadOffset = offset;
        _data.ReleaseBefore(offset);
        if (End == offset && _rangeCount == 0 && _data.PageCount > 0)
        {
            _data.ReleaseAll(offset); // drop the partly used last page too: an idle connection holds no page
        }
    }

    /// <summary>Stream offset of the SYN's successor is 0; sets where data starts (used when nothing was received yet).</summary>
    public void Reset(long offset)
    {
        ReadOffset = offset;
        End = offset;
        _data.ReleaseAll(offset);
    }

    /// <summary>
    /// Frees everything (connection closed or reset). With <paramref name="abandon"/> the pages are
    /// left to the GC instead of the pool because the application may still read them.
    /// </summary>
    public void Clear(bool abandon)
    {
        _ranges = null;
        _rangeCount = 0;
        _data.ReleaseAll(End, abandon);
        ReadOffset = End;
    }
}
