using System.Buffers;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// A 16 KiB page of a connection's send or receive buffer. Pages are also the segments of
/// the <see cref="ReadOnlySequence{T}"/> the pipe reader hands out: a page's
/// <see cref="ReadOnlySequenceSegment{T}.RunningIndex"/> is the stream offset of its first
/// byte, so any two pages of one buffer form a valid sequence once linked in order.
/// </summary>
internal sealed class BufferPage : ReadOnlySequenceSegment<byte>
{
    /// <summary>log2 of <see cref="Size"/>.</summary>
    public const int Shift = 14;

    /// <summary>Bytes per page.</summary>
    public const int Size = 1 << Shift;

    /// <summary>Mask of the offset within a page.</summary>
    public const long OffsetMask = Size - 1;

    public BufferPage()
    {
        Array = GC.AllocateUninitializedArray<byte>(Size);
        Memory = Array;
    }

    public byte[] Array { get; }

    /// <summary>Stream offset of the page's first byte.</summary>
    public long Start => RunningIndex;

    /// <summary>Prepares the page to hold stream offsets [start, start + Size).</summary>
    public void Reset(long start)
    {
        RunningIndex = start;
        Next = null;
    }

    /// <summary>Links the page that follows this one in a sequence.</summary>
    public void Link(BufferPage? next) => Next = next;
}

/// <summary>
/// The stack's pool of free <see cref="BufferPage"/>s, shared by every TCP buffer: renting and
/// returning are a short critical section, never an allocation once warm. Keeps at most
/// <c>maxFree</c> pages; the rest go to the GC. Memory accounting (the stack budget) is done by
/// the buffers, not here. Thread-safe.
/// </summary>
internal sealed class PagePool(int maxFree)
{
    private readonly BufferPage[] _free = new BufferPage[maxFree];
    private readonly Lock _lock = new();
    private int _count;

    /// <summary>Free pages held.</summary>
    public int FreeCount => Volatile.Read(ref _count);

    public BufferPage Rent()
    {
        lock (_lock)
        {
            if (_count > 0)
            {
                var page = _free[--_count];
                _free[_count] = null!;
                return page;
            }
        }
        return new BufferPage();
    }

    public void Return(BufferPage page)
    {
        lock (_lock)
        {
            if (_count < _free.Length)
            {
                _free[_count++] = page;
            }
        }
    }
}
