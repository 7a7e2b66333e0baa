using System.Collections.Concurrent;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Per-source token bucket for handshake messages processed under load (a valid mac2 was
/// presented): <see cref="PacketsPerSecond"/> per second with bursts of
/// <see cref="PacketsBurstable"/>, as in wireguard-go and Linux.
/// </summary>
/// <remarks>
/// <para>Sources are grouped as Linux does: an IPv4 source by its full address, an IPv6 source
/// by its /64 prefix, so one host cannot escape the limit by hopping addresses inside its
/// subnet. The port never matters.</para>
/// <para>Memory is bounded: entries idle for more than <see cref="GarbageCollectTime"/> are
/// removed by a timer from the <see cref="TimeProvider"/> (armed only while the table is
/// non-empty), and the table never holds more than its capacity. When it is full, sources it
/// does not know are refused until the collector makes room: under a flood that exhausts the
/// table, known peers keep their buckets and new arrivals wait.</para>
/// <para>Thread safety: <see cref="Allow"/> may be called from any number of threads at once.
/// A known source costs a lock-free dictionary lookup and an uncontended per-entry lock; it does
/// not allocate. The first packet from a source allocates its entry.</para>
/// <para>After <see cref="Dispose"/> the collector is stopped, the table is emptied and
/// <see cref="Allow"/> refuses everything; calls racing with Dispose are harmless.</para>
/// </remarks>
internal sealed class HandshakeRateLimiter : IDisposable
{
    /// <summary>Sustained rate allowed per source.</summary>
    public const int PacketsPerSecond = 20;

    /// <summary>Burst allowed per source (in packets).</summary>
    public const int PacketsBurstable = 5;

    /// <summary>Default hard cap on tracked sources.</summary>
    public const int DefaultCapacity = 16384;

    /// <summary>Entries idle for longer than this are forgotten (a forgotten source is indistinguishable
    /// from one whose bucket is full again, which takes 250 ms).</summary>
    public static readonly TimeSpan GarbageCollectTime = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _timeProvider;
    private readonly int _capacity;

    // Bucket arithmetic in TimeProvider timestamp units: one token per elapsed tick.
    private readonly long _packetCost;
    private readonly long _maxTokens;
    private readonly long _idleLimit;

    private readonly ConcurrentDictionary<UInt128, Entry> _table = new();

    // Number of entries in _table (maintained here; ConcurrentDictionary.Count takes every lock).
    // Incremented before an insertion is attempted so the capacity is never exceeded.
    private int _count;

    // Guards arming and disarming of _timer, and _disposed transitions.
    private readonly Lock _timerLock = new();
    private readonly ITimer _timer;
    private bool _timerArmed; // guarded by _timerLock
    private volatile bool _disposed;

    // Set while a collection pass runs, so overlapping timer callbacks skip instead of queueing.
    private int _collecting;

    /// <summary>Creates a limiter with the default capacity.</summary>
    public HandshakeRateLimiter(TimeProvider timeProvider)
        : this(timeProvider, DefaultCapacity)
    {
    }

    /// <summary>Creates a limiter tracking at most <paramref name="capacity"/> sources.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not positive.</exception>
    public HandshakeRateLimiter(TimeProvider timeProvider, int capacity)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _timeProvider = timeProvider;
        _capacity = capacity;
        long frequency = timeProvider.TimestampFrequency;
        _packetCost = frequency / PacketsPerSecond;
        _maxTokens = _packetCost * PacketsBurstable;
        _idleLimit = (long)(GarbageCollectTime.TotalSeconds * frequency);
        _timer = timeProvider.CreateTimer(static state => ((HandshakeRateLimiter)state!).Collect(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The number of sources currently tracked.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// Charges one handshake to the source's bucket.
    /// </summary>
    /// <returns>True when the handshake may be processed; false when the source is over its rate,
    /// the table is full and the source is unknown, or the limiter is disposed.</returns>
    public bool Allow(in NetEndpoint source)
    {
        if (_disposed)
        {
            return false;
        }

        UInt128 key = KeyOf(source);
        long now = _timeProvider.GetTimestamp();

        if (_table.TryGetValue(key, out var entry))
        {
            // If the collector removes this entry concurrently, this one decision is taken on an
            // orphan. That is benign: an entry is only collected after a second of idleness, by
            // which time its bucket is full, exactly the state a fresh entry starts in.
            return entry.TryTake(now, _packetCost, _maxTokens);
        }

        return AddSource(key, now);
    }

    /// <summary>Stops the collector and forgets every source. Idempotent.</summary>
    public void Dispose()
    {
        lock (_timerLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            _timerArmed = false;
            _timer.Dispose();
        }
        _table.Clear();
        Volatile.Write(ref _count, 0);
    }

    // The first packet seen from a source: it is allowed, and its bucket starts full minus this packet.
    private bool AddSource(UInt128 key, long now)
    {
        // Reserve a slot without ever overshooting the cap, even transiently (Count is public).
        while (true)
        {
            int count = Volatile.Read(ref _count);
            if (count >= _capacity)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _count, count + 1, count) == count)
            {
                break;
            }
        }

        var fresh = new Entry(now, _maxTokens - _packetCost);
        var entry = _table.GetOrAdd(key, fresh);
        if (!ReferenceEquals(entry, fresh))
        {
            // Another thread added this source first: give back our slot and charge theirs.
            Interlocked.Decrement(ref _count);
            return entry.TryTake(now, _packetCost, _maxTokens);
        }

        ArmCollector();
        return true;
    }

    // Called after every insertion (never on the known-source path). Taking the lock each time is
    // what makes arming race-free against Collect's "count is zero, disarm" step: either Collect
    // ran first and we re-arm, or it runs after us and sees our entry in the count.
    private void ArmCollector()
    {
        lock (_timerLock)
        {
            if (!_timerArmed && !_disposed)
            {
                _timerArmed = true;
                _timer.Change(GarbageCollectTime, GarbageCollectTime);
            }
        }
    }

    // Timer callback: drops entries idle for more than GarbageCollectTime; disarms the timer
    // once the table is empty (the next new source re-arms it).
    private void Collect()
    {
        if (Interlocked.Exchange(ref _collecting, 1) != 0)
        {
            return;
        }
        try
        {
            long now = _timeProvider.GetTimestamp();
            foreach (var pair in _table)
            {
                if (pair.Value.IsIdle(now, _idleLimit) && _table.TryRemove(pair))
                {
                    Interlocked.Decrement(ref _count);
                }
            }

            lock (_timerLock)
            {
                // Every insertion increments the count before taking this lock to arm, so observing
                // zero here cannot strand a new entry without a collector.
                if (_timerArmed && Volatile.Read(ref _count) == 0)
                {
                    _timerArmed = false;
                    _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                }
            }
        }
        finally
        {
            Volatile.Write(ref _collecting, 0);
        }
    }

    // IPv4 (held IPv4-mapped): the full address. IPv6: the /64 prefix. The two key spaces are
    // disjoint: an IPv4-mapped key always has non-zero low 64 bits, an IPv6 key never does.
    private static UInt128 KeyOf(in NetEndpoint source)
    {
        UInt128 bits = source.AddressBits;
        return source.IsIPv4 ? bits : bits & (UInt128.MaxValue << 64);
    }

    // One source's bucket. Tokens are measured in timestamp ticks: a packet costs
    // 1/PacketsPerSecond of a second, and the bucket holds at most PacketsBurstable packets.
    private sealed class Entry
    {
        private readonly Lock _gate = new();
        private long _lastTime; // guarded by _gate
        private long _tokens;   // guarded by _gate

        public Entry(long now, long tokens)
        {
            _lastTime = now;
            _tokens = tokens;
        }

        public bool TryTake(long now, long packetCost, long maxTokens)
        {
            lock (_gate)
            {
                long elapsed = now - _lastTime;
                if (elapsed > 0)
                {
                    // Clamp before adding so a long idle span cannot overflow.
                    _tokens = elapsed >= maxTokens ? maxTokens : Math.Min(maxTokens, _tokens + elapsed);
                    _lastTime = now;
                }

                // ">=" as in Linux: a bucket holding exactly one packet's worth pays for it.
                if (_tokens >= packetCost)
                {
                    _tokens -= packetCost;
                    return true;
                }
                return false;
            }
        }

        public bool IsIdle(long now, long idleLimit)
        {
            lock (_gate)
            {
                return now - _lastTime > idleLimit;
            }
        }
    }
}
