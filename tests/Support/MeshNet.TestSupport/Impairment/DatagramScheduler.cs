using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MeshNet.TestSupport.Impairment;

/// <summary>A datagram waiting in a <see cref="DatagramScheduler"/>: a pooled copy and what to do with it.</summary>
/// <param name="Buffer">Rented from the direction's <see cref="DatagramBufferPool"/>; returned by the scheduler after sending.</param>
/// <param name="Length">The datagram's length in <paramref name="Buffer"/>.</param>
/// <param name="Direction">Where it goes.</param>
/// <param name="Hold">True when, once due, it is held back to be overtaken (reordering).</param>
internal readonly record struct ScheduledDatagram(byte[] Buffer, int Length, RelayDirection Direction, bool Hold);

/// <summary>
/// The single timing thread of an <see cref="ImpairmentRelay"/>: a priority queue of datagrams
/// keyed by release time (<see cref="Stopwatch"/> ticks, FIFO among equal times), released by one
/// thread that sleeps until the next one is due. Waits longer than 2 ms use a monitor wait
/// (woken early when an earlier datagram arrives) that ends about 1 ms before the due time; the
/// rest is slept in slices of at most 250 µs with <c>nanosleep</c>, so datagrams leave within
/// a few tens of microseconds of their time without spinning a core. Also owns the datagrams
/// held back for reordering (released after the next N of their direction, or at a deadline).
/// </summary>
internal sealed partial class DatagramScheduler : IDisposable
{
    private const int BatchSize = 256;
    private static readonly long EarlySlack = Stopwatch.Frequency / 50_000; // 20 µs
    private static readonly long FineSlice = Stopwatch.Frequency / 4_000; // 250 µs
    private static readonly long CoarseThreshold = Stopwatch.Frequency / 500; // 2 ms

    private readonly object _gate = new();
    private readonly Thread _thread;

    // Guarded by _gate.
    private readonly PriorityQueue<ScheduledDatagram, (long Due, long Order)> _queue = new(1024);
    private long _order;
    private long _wakeAt = long.MaxValue; // when the thread will look again if not pulsed
    private bool _stopping;

    // Owned by the scheduler thread (and by Dispose once it has ended).
    private readonly List<ScheduledDatagram> _batch = new(BatchSize);
    private readonly List<HeldDatagram> _held = [];
    private readonly List<HeldDatagram> _releasing = [];

    public DatagramScheduler(string name)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = name, Priority = ThreadPriority.AboveNormal };
        _thread.Start();
    }

    /// <summary>Queues <paramref name="datagram"/> for <paramref name="due"/> (a <see cref="Stopwatch"/> timestamp). Thread-safe.</summary>
    /// <returns>False when the scheduler is stopping (the caller still owns the buffer).</returns>
    public bool Enqueue(in ScheduledDatagram datagram, long due)
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return false;
            }
            _queue.Enqueue(datagram, (due, _order++));
            if (due < _wakeAt)
            {
                Monitor.Pulse(_gate);
            }
            return true;
        }
    }

    /// <summary>Stops the thread and returns the buffers of every datagram not sent. Idempotent.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }
            _stopping = true;
            Monitor.Pulse(_gate);
        }
        _thread.Join();
        lock (_gate)
        {
            while (_queue.TryDequeue(out var datagram, out _))
            {
                Discard(datagram);
            }
        }
        foreach (var held in _held)
        {
            Discard(held.Datagram);
        }
        _held.Clear();
        foreach (var datagram in _batch)
        {
            Discard(datagram);
        }
        _batch.Clear();
    }

    private static void Discard(in ScheduledDatagram datagram)
    {
        datagram.Direction.Release(datagram.Buffer);
    }

    private void Run()
    {
        while (true)
        {
            long fineSleep = 0;
            lock (_gate)
            {
                while (true)
                {
                    if (_stopping)
                    {
                        return;
                    }
                    long now = Stopwatch.GetTimestamp();
                    while (_batch.Count < BatchSize && _queue.TryPeek(out var next, out var key) && key.Due <= now + EarlySlack)
                    {
                        _queue.Dequeue();
                        _batch.Add(next);
                    }
                    long heldDeadline = EarliestHeldDeadline();
                    if (_batch.Count > 0 || heldDeadline <= now + EarlySlack)
                    {
                        break;
                    }
                    long target = Math.Min(heldDeadline, _queue.TryPeek(out _, out var head) ? head.Due : long.MaxValue);
                    long remaining = target == long.MaxValue ? long.MaxValue : target - now;
                    if (remaining >= CoarseThreshold)
                    {
                        _wakeAt = target;
                        if (target == long.MaxValue)
                        {
                            Monitor.Wait(_gate);
                        }
                        else
                        {
                            // Whole milliseconds, ending at least 1 ms early; nanosleep does the rest.
                            long milliseconds = remaining * 1000 / Stopwatch.Frequency - 1;
                            Monitor.Wait(_gate, (int)Math.Min(milliseconds, int.MaxValue));
                        }
                        _wakeAt = long.MaxValue;
                        continue;
                    }
                    fineSleep = Math.Min(remaining, FineSlice);
                    break;
                }
            }

            if (fineSleep > 0)
            {
                PreciseSleep(fineSleep);
                continue;
            }

            foreach (var datagram in _batch)
            {
                if (datagram.Hold)
                {
                    var profile = datagram.Direction.Profile;
                    long deadline = Stopwatch.GetTimestamp() + RelayDirection.ToTicks(profile.ReorderHold);
                    _held.Add(new HeldDatagram(datagram, profile.ReorderGap == 0 ? int.MaxValue : profile.ReorderGap, deadline));
                }
                else
                {
                    SendAndRelease(datagram);
                }
            }
            _batch.Clear();
            ReleaseHeldPastDeadline();
        }
    }

    // Sends one datagram, then every held datagram of its direction whose gap it completes
    // (and, in turn, those that the released ones complete).
    private void SendAndRelease(in ScheduledDatagram datagram)
    {
        Send(datagram);
        var direction = datagram.Direction;
        while (true)
        {
            for (int i = _held.Count - 1; i >= 0; i--)
            {
                var held = _held[i];
                if (held.Datagram.Direction != direction)
                {
                    continue;
                }
                held = held with { Remaining = held.Remaining - 1 };
                if (held.Remaining <= 0)
                {
                    _held.RemoveAt(i);
                    _releasing.Add(held);
                }
                else
                {
                    _held[i] = held;
                }
            }
            if (_releasing.Count == 0)
            {
                return;
            }
            // Held the longest first; each release counts as a departure for the others.
            var released = _releasing[^1];
            _releasing.RemoveAt(_releasing.Count - 1);
            foreach (var other in _releasing)
            {
                _held.Add(other);
            }
            _releasing.Clear();
            Send(released.Datagram);
        }
    }

    private void ReleaseHeldPastDeadline()
    {
        long now = Stopwatch.GetTimestamp();
        for (int i = 0; i < _held.Count; i++)
        {
            var held = _held[i];
            if (held.Deadline <= now + EarlySlack)
            {
                _held.RemoveAt(i);
                SendAndRelease(held.Datagram);
                i = -1; // the list changed under the loop: start over
            }
        }
    }

    private long EarliestHeldDeadline()
    {
        long earliest = long.MaxValue;
        foreach (var held in _held)
        {
            earliest = Math.Min(earliest, held.Deadline);
        }
        return earliest;
    }

    private static void Send(in ScheduledDatagram datagram)
    {
        try
        {
            datagram.Direction.Send(datagram.Buffer.AsSpan(0, datagram.Length));
        }
        finally
        {
            datagram.Direction.Release(datagram.Buffer);
        }
    }

    private static void PreciseSleep(long ticks)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            long nanoseconds = ticks * 1_000_000_000 / Stopwatch.Frequency;
            var request = new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 };
            NanoSleep(ref request, IntPtr.Zero);
        }
        else
        {
            Thread.Sleep(0);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private readonly record struct HeldDatagram(ScheduledDatagram Datagram, int Remaining, long Deadline);

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(ref TimeSpec request, IntPtr remaining);
}

/// <summary>
/// Buffers for the delayed datagrams of one relay. Datagrams up to <see cref="BufferSize"/> bytes
/// (every WireGuard datagram of a 1420-byte tunnel MTU) get a buffer from a stack that keeps up
/// to <see cref="MaxCached"/> of them; larger ones use <see cref="ArrayPool{T}.Shared"/>. (The
/// shared pool's per-thread caches do not suit buffers rented on one thread and returned on
/// another by the thousand: it would allocate now and then.) Thread-safe.
/// </summary>
internal sealed class DatagramBufferPool
{
    public const int BufferSize = 2048;
    public const int MaxCached = 16_384;

    private readonly Stack<byte[]> _free = new(); // guarded by itself

    public byte[] Rent(int length)
    {
        if (length > BufferSize)
        {
            return ArrayPool<byte>.Shared.Rent(length);
        }
        lock (_free)
        {
            if (_free.TryPop(out var buffer))
            {
                return buffer;
            }
        }
        return new byte[BufferSize];
    }

    public void Return(byte[] buffer)
    {
        if (buffer.Length != BufferSize)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return;
        }
        lock (_free)
        {
            if (_free.Count < MaxCached)
            {
                _free.Push(buffer);
            }
        }
    }
}
