namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// A connection's send buffer: bytes from the application not yet acknowledged, at stream
/// offsets (offset 0 is the byte after our SYN). [<see cref="Head"/>, <see cref="Tail"/>) is
/// data the connection may send (unacknowledged or unsent); bytes in [Tail,
/// <see cref="WriterEnd"/>) were written through the pipe writer but not flushed yet.
/// Segments are built by copying straight from these pages into the outgoing packet.
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal sealed class SendBuffer(PagePool pool, MemoryBudget budget)
{
    private readonly PagedBuffer _data = new(pool, budget);

    /// <summary>Offset of the oldest unacknowledged byte (SND.UNA as an offset).</summary>
    public long Head { get; private set; }

    /// <summary>Offset just past the last byte the connection may send.</summary>
    public long Tail { get; private set; }

    /// <summary>Offset just past the last byte written (flushed or not).</summary>
    public long WriterEnd { get; private set; }

    /// <summary>Bytes held: sendable and unflushed.</summary>
    public long Buffered => WriterEnd - Head;

    /// <summary>Bytes reserved against the stack budget.</summary>
    public long ReservedBytes => _data.ReservedBytes;

    /// <summary>True between <see cref="GetWriterMemory"/> and <see cref="AdvanceWriter"/>: the application may be writing into a page.</summary>
    public bool WriterMemoryOutstanding { get; private set; }

    /// <summary>Pages held.</summary>
    public int PageCount => _data.PageCount;

    /// <summary>Copies as much of <paramref name="data"/> as the budget allows behind the written data; returns the count.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int written = 0;
        while (written < data.Length)
        {
            int within = (int)(WriterEnd & BufferPage.OffsetMask);
            int chunk = Math.Min(data.Length - written, BufferPage.Size - within);
            if (!_data.TryWrite(WriterEnd, data.Slice(written, chunk)))
            {
                break;
            }
            WriterEnd += chunk;
            written += chunk;
        }
        return written;
    }

    /// <summary>
    /// Memory to write into directly at <see cref="WriterEnd"/>: the rest of the current page,
    /// when it holds at least <paramref name="sizeHint"/> bytes. Empty when it does not or the
    /// budget refuses the page.
    /// </summary>
    public Memory<byte> GetWriterMemory(int sizeHint)
    {
        int within = (int)(WriterEnd & BufferPage.OffsetMask);
        int room = BufferPage.Size - within;
        if (room < Math.Max(sizeHint, 1) || !_data.TryEnsure(WriterEnd, 1))
        {
            return Memory<byte>.Empty;
        }
        WriterMemoryOutstanding = true;
        return _data.PageAt(WriterEnd)!.Array.AsMemory(within, room);
    }

    /// <summary>Commits <paramref name="count"/> bytes written into <see cref="GetWriterMemory"/>.</summary>
    public void AdvanceWriter(int count)
    {
        WriterEnd += count;
        WriterMemoryOutstanding = false;
    }

    /// <summary>Makes every written byte sendable.</summary>
    public void Publish() => Tail = WriterEnd;

    /// <summary>Copies [offset, offset + destination.Length) into an outgoing segment.</summary>
    public void CopyTo(long offset, Span<byte> destination) => _data.CopyTo(offset, destination);

    /// <summary>Frees the bytes below <paramref name="offset"/> (acknowledged).</summary>
    public void Acknowledge(long offset)
    {
        if (offset <= Head)
        {
            return;
        }
        Head = Math.Min(offset, Tail);
        _data.ReleaseBefore(Head);
        if (Head == WriterEnd && _data.PageCount > 0 && !WriterMemoryOutstanding)
        {
            _data.ReleaseAll(Head); // nothing buffered: hold no page
        }
    }

    /// <summary>
    /// Frees everything (reset or closed). The page the pipe writer may still be writing into
    /// (<see cref="WriterMemoryOutstanding"/>) is abandoned to the GC instead of pooled.
    /// </summary>
    public void Clear()
    {
        if (WriterMemoryOutstanding)
        {
            _data.ReleaseAllAbandoning(WriterEnd, WriterEnd);
        }
        else
        {
            _data.ReleaseAll(WriterEnd);
        }
        Head = Tail = WriterEnd;
    }
}
