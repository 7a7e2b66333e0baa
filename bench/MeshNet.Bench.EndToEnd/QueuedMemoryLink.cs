using MeshNet.Userspace.Link;

namespace MeshNet.Bench.EndToEnd;

/// <summary>Two connected in-memory link ends for stack-to-stack runs.</summary>
/// <remarks>
/// TODO(MemoryLink): replace <see cref="QueuedMemoryLink"/> with
/// <c>MeshNet.Userspace.Link.MemoryLink.CreatePair(...)</c> once the ip work lands it (two ends
/// that are <see cref="IPacketSink"/>s with an attachable receiver); this interface is the seam.
/// </remarks>
internal interface IMemoryLinkPair : IDisposable
{
    /// <summary>End A: packets written here reach B's receiver.</summary>
    IPacketSink A { get; }

    /// <summary>End B: packets written here reach A's receiver.</summary>
    IPacketSink B { get; }

    /// <summary>Sets who receives the packets written into A (<paramref name="atB"/>) and into B (<paramref name="atA"/>).</summary>
    void Attach(IPacketSink atA, IPacketSink atB);
}

/// <summary>
/// A bench-local in-memory link: each direction copies packets into pooled buffers, queues them
/// and delivers them on its own thread, in order, to the receiver at the far end. The thread
/// keeps delivery off the sender's stack (a stack that sent a segment is never re-entered by
/// the peer's answer on the same call chain). Packets written before <see cref="Attach"/> are
/// dropped.
/// </summary>
internal sealed class QueuedMemoryLink : IMemoryLinkPair
{
    private readonly Direction _aToB = new("memory link A->B");
    private readonly Direction _bToA = new("memory link B->A");

    public IPacketSink A => _aToB;

    public IPacketSink B => _bToA;

    public void Attach(IPacketSink atA, IPacketSink atB)
    {
        _aToB.Start(atB);
        _bToA.Start(atA);
    }

    public void Dispose()
    {
        _aToB.Dispose();
        _bToA.Dispose();
    }

    private sealed class Direction(string name) : IPacketSink, IDisposable
    {
        private const int BufferSize = 65_536 + 64;
        private const int MaxQueued = 16_384; // beyond this the link drops, like a full device queue

        private readonly object _gate = new();
        private readonly Queue<(byte[] Buffer, int Length)> _queue = new(); // guarded by _gate
        private readonly Stack<byte[]> _free = new(); // guarded by _gate
        private IPacketSink? _receiver;
        private Thread? _thread;
        private bool _waiting; // guarded by _gate: the delivery thread is waiting for packets
        private bool _stopping; // guarded by _gate

        public long Dropped { get; private set; }

        public void Start(IPacketSink receiver)
        {
            _receiver = receiver;
            _thread = new Thread(Deliver) { IsBackground = true, Name = name };
            _thread.Start();
        }

        public void WritePacket(ReadOnlySpan<byte> packet)
        {
            lock (_gate)
            {
                if (_receiver is null || _stopping || _queue.Count >= MaxQueued || packet.Length > BufferSize)
                {
                    Dropped++;
                    return;
                }
                var buffer = _free.TryPop(out var free) ? free : new byte[BufferSize];
                packet.CopyTo(buffer);
                _queue.Enqueue((buffer, packet.Length));
                if (_waiting)
                {
                    Monitor.Pulse(_gate);
                }
            }
        }

        public void Dispose()
        {
            lock (_gate)
            {
                _stopping = true;
                Monitor.Pulse(_gate);
            }
            _thread?.Join();
        }

        private void Deliver()
        {
            var batch = new List<(byte[] Buffer, int Length)>(256);
            while (true)
            {
                lock (_gate)
                {
                    while (_queue.Count == 0 && !_stopping)
                    {
                        _waiting = true;
                        Monitor.Wait(_gate);
                        _waiting = false;
                    }
                    if (_stopping)
                    {
                        return;
                    }
                    while (batch.Count < 256 && _queue.TryDequeue(out var item))
                    {
                        batch.Add(item);
                    }
                }
                foreach (var (buffer, length) in batch)
                {
                    _receiver!.WritePacket(buffer.AsSpan(0, length));
                }
                lock (_gate)
                {
                    foreach (var (buffer, _) in batch)
                    {
                        _free.Push(buffer);
                    }
                }
                batch.Clear();
            }
        }
    }
}
