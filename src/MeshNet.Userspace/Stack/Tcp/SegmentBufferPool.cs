using System.Buffers;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// Buffers for outgoing segments, in two sizes: small ones for ACKs, SYNs and RSTs, and
/// MTU-sized ones for data (IP header room plus the largest packet the link sends). Keeps up
/// to a few MiB of free buffers so a steady transfer allocates nothing even with hundreds of
/// segments queued at once (more than <see cref="ArrayPool{T}.Shared"/> caches per size).
/// Larger requests fall back to the shared pool. Thread-safe.
/// </summary>
internal sealed class SegmentBufferPool
{
    /// <summary>Room for any segment without data: IP header room, TCP header and 40 bytes of options.</summary>
    public const int SmallSize = IIpOutput.HeaderRoom + 64;

    private const long RetainedBytes = 4L << 20;

    private readonly Stack _small;
    private readonly Stack _large;

    public SegmentBufferPool(int mtu)
    {
        LargeSize = IIpOutput.HeaderRoom + Math.Max(mtu, 1280);
        _small = new Stack(SmallSize, 1024);
        _large = new Stack(LargeSize, (int)Math.Clamp(RetainedBytes / LargeSize, 64, 4096));
    }

    /// <summary>Size of a data buffer.</summary>
    public int LargeSize { get; }

    public byte[] Rent(int size) =>
        size <= SmallSize ? _small.Rent() :
        size <= LargeSize ? _large.Rent() :
        ArrayPool<byte>.Shared.Rent(size);

    public void Return(byte[] buffer)
    {
        if (buffer.Length == SmallSize)
        {
            _small.Return(buffer);
        }
        else if (buffer.Length == LargeSize)
        {
            _large.Return(buffer);
        }
        else
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private sealed class Stack(int size, int capacity)
    {
        private readonly byte[][] _items = new byte[capacity][];
        private readonly Lock _lock = new();
        private int _count;

        public byte[] Rent()
        {
            lock (_lock)
            {
                if (_count > 0)
                {
                    var buffer = _items[--_count];
                    _items[_count] = null!;
                    return buffer;
                }
            }
            return GC.AllocateUninitializedArray<byte>(size);
        }

        public void Return(byte[] buffer)
        {
            lock (_lock)
            {
                if (_count < _items.Length)
                {
                    _items[_count++] = buffer;
                }
            }
        }
    }
}
