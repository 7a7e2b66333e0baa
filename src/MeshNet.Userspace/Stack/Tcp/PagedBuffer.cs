using System.Buffers;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Bytes addressed by a 64-bit stream offset, stored in <see cref="BufferPage"/>s that are
/// rented on first write and returned once every offset in them is released. The pages in use
/// sit in a power-of-two ring indexed by page number, so any write or read within the live span
/// is a direct lookup. Each page is reserved against the stack's <see cref="MemoryBudget"/>
/// while held; an empty buffer holds no page.
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal sealed class PagedBuffer
{
    private readonly PagePool _pool;
    private readonly MemoryBudget _budget;
    private BufferPage?[] _ring;
    private long _start;

    public PagedBuffer(PagePool pool, MemoryBudget budget, int initialPages = 4)
    {
        _pool = pool;
        _budget = budget;
        _ring = new BufferPage?[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(2, initialPages))];
    }

    /// <summary>Pages currently held.</summary>
    public int PageCount { get; private set; }

    /// <summary>Bytes reserved against the budget (PageCount x page size).</summary>
    public long ReservedBytes => (long)PageCount * BufferPage.Size;

    /// <summary>The lowest offset still held (offsets below it were released).</summary>
    public long Start => _start;

    private int Slot(long offset) => (int)((offset >> BufferPage.Shift) & (_ring.Length - 1));

    /// <summary>Makes sure offsets [<see cref="Start"/>, end) can be held without ring collisions.</summary>
    private void EnsureSpan(long end)
    {
        long pages = ((end - 1) >> BufferPage.Shift) - (_start >> BufferPage.Shift) + 1;
        if (pages <= _ring.Length)
        {
            return;
        }
        var ring = new BufferPage?[(int)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)pages)];
        foreach (var page in _ring)
        {
            if (page is not null)
            {
                ring[(int)((page.Start >> BufferPage.Shift) & (ring.Length - 1))] = page;
            }
        }
        _ring = ring;
    }

    /// <summary>
    /// Ensures the pages covering [offset, offset + length) exist, reserving budget for the
    /// missing ones. All or nothing: returns false (and changes nothing) when the budget
    /// cannot take them.
    /// </summary>
    public bool TryEnsure(long offset, int length)
    {
        if (length <= 0)
        {
            return true;
        }
        System.Diagnostics.Debug.Assert(offset >= _start, "write below the released offset");
        long end = offset + length;
        EnsureSpan(end);
        long first = offset >> BufferPage.Shift;
        long last = (end - 1) >> BufferPage.Shift;
        int missing = 0;
        for (long p = first; p <= last; p++)
        {
            if (_ring[(int)(p & (_ring.Length - 1))] is null)
            {
                missing++;
            }
        }
        if (missing == 0)
        {
            return true;
        }
        if (!_budget.TryReserve((long)missing * BufferPage.Size))
        {
            return false;
        }
        for (long p = first; p <= last; p++)
        {
            int slot = (int)(p & (_ring.Length - 1));
            if (_ring[slot] is null)
            {
                var page = _pool.Rent();
                page.Reset(p << BufferPage.Shift);
                _ring[slot] = page;
            }
        }
        PageCount += missing;
        return true;
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>; false when the budget refused the pages.</summary>
    public bool TryWrite(long offset, ReadOnlySpan<byte> data)
    {
        if (!TryEnsure(offset, data.Length))
        {
            return false;
        }
        while (!data.IsEmpty)
        {
            var page = _ring[Slot(offset)]!;
            int within = (int)(offset & BufferPage.OffsetMask);
            int chunk = Math.Min(data.Length, BufferPage.Size - within);
            data[..chunk].CopyTo(page.Array.AsSpan(within));
            data = data[chunk..];
            offset += chunk;
        }
        return true;
    }

    /// <summary>Copies [offset, offset + destination.Length) out; the pages must exist.</summary>
    public void CopyTo(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            var page = _ring[Slot(offset)]!;
            int within = (int)(offset & BufferPage.OffsetMask);
            int chunk = Math.Min(destination.Length, BufferPage.Size - within);
            page.Array.AsSpan(within, chunk).CopyTo(destination);
            destination = destination[chunk..];
            offset += chunk;
        }
    }

    /// <summary>The page holding <paramref name="offset"/> (null when not held).</summary>
    public BufferPage? PageAt(long offset) => _ring[Slot(offset)] is { } page && page.Start == (offset & ~BufferPage.OffsetMask) ? page : null;

    /// <summary>A sequence over [from, to): every page in the range must exist (they are linked in order).</summary>
    public ReadOnlySequence<byte> GetSequence(long from, long to)
    {
        if (to <= from)
        {
            return ReadOnlySequence<byte>.Empty;
        }
        var first = _ring[Slot(from)]!;
        var last = _ring[Slot(to - 1)]!;
        var page = first;
        while (page != last)
        {
            var next = _ring[Slot(page.Start + BufferPage.Size)]!;
            page.Link(next);
            page = next;
        }
        return new ReadOnlySequence<byte>(first, (int)(from - first.Start), last, (int)(to - last.Start));
    }

    /// <summary>
    /// Releases every page whose bytes all lie below <paramref name="offset"/> and raises
    /// <see cref="Start"/> to it. Pages go back to the pool unless <paramref name="abandon"/>
    /// (the application may still hold memory in them: they are left to the GC).
    /// </summary>
    public void ReleaseBefore(long offset, bool abandon = false)
    {
        if (offset <= _start)
        {
            return;
        }
        long firstPage = _start >> BufferPage.Shift;
        long endPage = offset >> BufferPage.Shift; // pages below this one are entirely below offset
        for (long p = firstPage; p < endPage && PageCount > 0; p++)
        {
            int slot = (int)(p & (_ring.Length - 1));
            var page = _ring[slot];
            if (page is not null && page.Start == p << BufferPage.Shift)
            {
                _ring[slot] = null;
                Free(page, abandon);
            }
        }
        _start = offset;
    }

    /// <summary>Releases every page (the buffer becomes empty); <see cref="Start"/> moves to <paramref name="newStart"/>.</summary>
    public void ReleaseAll(long newStart, bool abandon = false)
    {
        if (PageCount > 0)
        {
            for (int i = 0; i < _ring.Length; i++)
            {
                if (_ring[i] is { } page)
                {
                    _ring[i] = null;
                    Free(page, abandon);
                }
            }
        }
        _start = newStart;
    }

    /// <summary>Releases every page except the one holding <paramref name="keep"/>, which is abandoned instead of pooled.</summary>
    public void ReleaseAllAbandoning(long keep, long newStart)
    {
        var kept = PageAt(keep);
        if (kept is not null)
        {
            _ring[Slot(keep)] = null;
            Free(kept, abandon: true);
        }
        ReleaseAll(newStart);
    }

    private void Free(BufferPage page, bool abandon)
    {
        page.Link(null);
        PageCount--;
        _budget.Release(BufferPage.Size);
        if (!abandon)
        {
            _pool.Return(page);
        }
    }
}
