using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// A bind that copies every sent datagram into the next free slot of a preallocated batch
/// (used to produce real transport messages, with fresh counters, for the receive benchmarks).
/// Send returns false once the batch is full. Single-threaded.
/// </summary>
internal sealed class CaptureBind(int capacity, int slotSize) : IUdpBind
{
    private readonly byte[][] _slots = CreateSlots(capacity, slotSize);
    private readonly int[] _lengths = new int[capacity];

    /// <summary>Datagrams captured since the last <see cref="Reset"/>.</summary>
    public int Count { get; private set; }

    public ushort Port { get; private set; }

    /// <summary>The <paramref name="index"/>-th captured datagram (writable: receivers decrypt in place).</summary>
    public Span<byte> this[int index] => _slots[index].AsSpan(0, _lengths[index]);

    /// <summary>Forgets the captured datagrams; the slots are reused.</summary>
    public void Reset() => Count = 0;

    public ushort Open(ushort port, IDatagramReceiver receiver)
    {
        Port = port == 0 ? (ushort)51820 : port;
        return Port;
    }

    public bool Send(ReadOnlySpan<byte> datagram, in NetEndpoint destination)
    {
        if (Count == _slots.Length || datagram.Length > _slots[Count].Length)
        {
            return false;
        }
        datagram.CopyTo(_slots[Count]);
        _lengths[Count] = datagram.Length;
        Count++;
        return true;
    }

    public void Close() => Port = 0;

    public void Dispose() => Close();

    private static byte[][] CreateSlots(int capacity, int slotSize)
    {
        var slots = new byte[capacity][];
        for (int i = 0; i < capacity; i++)
        {
            slots[i] = new byte[slotSize];
        }
        return slots;
    }
}
