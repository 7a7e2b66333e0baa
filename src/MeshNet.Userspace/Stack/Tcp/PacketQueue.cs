namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Segments built under a connection's lock and waiting to be handed to the IP output after
/// the lock is released (so a synchronous link can never re-enter or deadlock the stack).
/// Buffers come from the layer's <see cref="SegmentBufferPool"/> and go back to it once sent.
/// </summary>
/// <remarks>Not thread-safe: the owning connection's lock guards it.</remarks>
internal sealed class PacketQueue
{
    private (byte[] Buffer, int Length)[] _items = new (byte[], int)[4];
    private int _head;

    public int Count { get; private set; }

    public void Enqueue(byte[] buffer, int length)
    {
        if (Count == _items.Length)
        {
            var items = new (byte[], int)[_items.Length * 2];
            for (int i = 0; i < Count; i++)
            {
                items[i] = _items[(_head + i) & (_items.Length - 1)];
            }
            _items = items;
            _head = 0;
        }
        _items[(_head + Count) & (_items.Length - 1)] = (buffer, length);
        Count++;
    }

    public (byte[] Buffer, int Length) Dequeue()
    {
        var item = _items[_head];
        _items[_head] = default;
        _head = (_head + 1) & (_items.Length - 1);
        Count--;
        return item;
    }

    /// <summary>Returns every queued buffer to <paramref name="pool"/> without sending.</summary>
    public void Clear(SegmentBufferPool pool)
    {
        while (Count > 0)
        {
            pool.Return(Dequeue().Buffer);
        }
    }
}
