using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Stack.Icmp;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// Reassembles fragmented IPv4 and IPv6 datagrams (RFC 791, RFC 8200 section 4.5, RFC 815's
/// hole tracking in spirit).
/// </summary>
/// <remarks>
/// <para>Rules: fragments are keyed by <see cref="FragmentKey"/> (IPv4: source, destination,
/// identification, protocol; IPv6: the same without the protocol, RFC 8200 4.5); each is
/// checked on its own first (no data; non-last not a multiple of 8; beyond 65,535) and then
/// against its datagram: exact and subset duplicates are dropped and the datagram kept;
/// partial overlaps and contradictions of the datagram's end drop the whole datagram (RFC 5722,
/// applied to IPv4 as Linux and gVisor do); any arrival order works.</para>
/// <para>Limits, so a fragment flood cannot grow memory: at most
/// <see cref="IpStackOptions.MaxReassemblyBytes"/> of fragment data, reserved as well against
/// the stack's <see cref="MemoryBudget"/>; at most <see cref="MaxDatagrams"/> incomplete
/// datagrams and <see cref="MaxFragmentsPerDatagram"/> fragments each. When a new fragment does
/// not fit, the oldest incomplete datagrams are dropped to make room. An incomplete datagram
/// expires <see cref="IpStackOptions.ReassemblyTimeout"/> after its first fragment arrived (not
/// extended by later ones); if its first fragment was received, an ICMP time exceeded
/// (reassembly) goes to the sender (rate-limited). One <see cref="ITimer"/> on the stack's
/// <see cref="TimeProvider"/> serves every datagram: entries expire in arrival order.</para>
/// <para>Thread safety: every member may be called from any thread. One lock guards the table,
/// the age list, the byte counts and the entry pool; buffers are copied under it, but datagrams
/// are assembled, and ICMP errors sent, outside it.</para>
/// </remarks>
internal sealed class FragmentReassembler : IDisposable
{
    /// <summary>Incomplete datagrams held at most.</summary>
    public const int MaxDatagrams = 1024;

    /// <summary>Fragments one datagram may have (a 64 KiB datagram over a 576-byte IPv4 path needs 119).</summary>
    public const int MaxFragmentsPerDatagram = 128;

    private const int EntryOverhead = 256;       // bookkeeping charged to the budget per datagram
    private const int MaxPooledEntries = 64;

    private readonly StackContext _context;
    private readonly IcmpErrorSender _errors;
    private readonly long _maxBytes;
    private readonly TimeSpan _timeout;
    private readonly ITimer _timer;

    private readonly Lock _lock = new();
    private readonly Dictionary<FragmentKey, ReassemblyEntry> _entries = new();  // guarded by _lock
    private readonly Stack<ReassemblyEntry> _pool = new();                       // guarded by _lock
    private ReassemblyEntry? _oldest;                                            // guarded by _lock
    private ReassemblyEntry? _newest;                                            // guarded by _lock
    private long _bytes;                                                         // guarded by _lock
    private bool _timerArmed;                                                    // guarded by _lock
    private bool _disposed;                                                      // guarded by _lock

    public FragmentReassembler(StackContext context, IcmpErrorSender errors)
    {
        _context = context;
        _errors = errors;
        _maxBytes = context.Options.MaxReassemblyBytes;
        _timeout = context.Options.ReassemblyTimeout;
        _timer = context.Time.CreateTimer(static state => ((FragmentReassembler)state!).OnTimer(), this,
            Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Incomplete datagrams held now.</summary>
    public int DatagramCount
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Fragment data bytes held now (what counts against <see cref="IpStackOptions.MaxReassemblyBytes"/>).</summary>
    public long BytesHeld
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>
    /// Adds one fragment. <paramref name="header"/> is the fragment's IP header as received
    /// (IPv6: through the fragment header), kept when this is the first fragment;
    /// <paramref name="data"/> is the fragment's data at byte <paramref name="offset"/> of the
    /// datagram. Drops are counted here.
    /// </summary>
    /// <returns>
    /// True when this fragment completed its datagram: <paramref name="datagram"/> then holds the
    /// reassembled IP packet (header rewritten as unfragmented) in a pooled buffer the caller
    /// must return.
    /// </returns>
    public bool Add(in FragmentKey key, ReadOnlySpan<byte> header, int unfragmentableLength, int nextHeaderFieldOffset,
        int offset, bool more, ReadOnlySpan<byte> data, out ReassembledDatagram datagram)
    {
        datagram = default;
        var counters = _context.Counters;
        int end = offset + data.Length;
        int maxData = IpProtocol.MaxDatagram - (key.IsIPv6 ? unfragmentableLength - IpProtocol.Ipv6HeaderLength : unfragmentableLength);
        if (data.IsEmpty || (more && (data.Length & 7) != 0) || end > maxData)
        {
            counters.Drop(StackDropReason.FragmentMalformed);
            return false;
        }

        ReassemblyEntry? released = null; // a chain (through Newer) of entries to release outside the lock
        ReassemblyEntry? completed = null;
        lock (_lock)
        {
            if (_disposed)
            {
                counters.Drop(StackDropReason.StackDisposed);
                return false;
            }
            if (!_entries.TryGetValue(key, out var entry))
            {
                while (_entries.Count >= MaxDatagrams)
                {
                    Evict(_oldest!, StackDropReason.FragmentBudgetExceeded, ref released);
                }
                entry = _pool.Count > 0 ? _pool.Pop() : new ReassemblyEntry();
                entry.Start(key, _context.Time.GetTimestamp() + TimestampTicks(_timeout));
                _entries.Add(key, entry);
                entry.InTable = true;
                LinkNewest(entry);
                if (!_timerArmed)
                {
                    _timerArmed = true;
                    _timer.Change(_timeout, Timeout.InfiniteTimeSpan);
                }
            }

            switch (entry.Classify(offset, end, more, MaxFragmentsPerDatagram, out int index))
            {
                case FragmentFit.Duplicate:
                    counters.Drop(StackDropReason.FragmentDuplicate);
                    break;
                case FragmentFit.Overlap:
                    counters.Drop(StackDropReason.FragmentOverlap);
                    Evict(entry, StackDropReason.FragmentOverlap, ref released);
                    break;
                case FragmentFit.Conflict:
                    counters.Drop(StackDropReason.FragmentMalformed);
                    Evict(entry, StackDropReason.FragmentMalformed, ref released);
                    break;
                case FragmentFit.TooMany:
                    counters.Drop(StackDropReason.FragmentBudgetExceeded);
                    Evict(entry, StackDropReason.FragmentBudgetExceeded, ref released);
                    break;
                default:
                    if (!Store(entry, index, header, unfragmentableLength, nextHeaderFieldOffset, offset, more, data, ref released) ||
                        !entry.IsComplete)
                    {
                        break;
                    }
                    if (AssembledLength(entry) > IpProtocol.MaxDatagram + (key.IsIPv6 ? IpProtocol.Ipv6HeaderLength : 0))
                    {
                        // Each fragment fit with its own header; with the first fragment's, the whole does not.
                        Evict(entry, StackDropReason.FragmentMalformed, ref released);
                        break;
                    }
                    Unlink(entry);
                    completed = entry;
                    break;
            }
        }

        Release(released);
        if (completed is null)
        {
            return false;
        }
        datagram = Assemble(completed);
        counters.DatagramReassembled(completed.Count);
        Release(completed);
        return true;
    }

    /// <summary>Drops every held datagram and stops the timer. Later fragments are dropped. Idempotent.</summary>
    public void Dispose()
    {
        ReassemblyEntry? released = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            while (_oldest is not null)
            {
                var entry = _oldest;
                Unlink(entry);
                entry.Newer = released;
                released = entry;
            }
            _pool.Clear();
        }
        _timer.Dispose();
        Release(released);
    }

    // Caller holds _lock. Copies the fragment, making room by evicting older datagrams if needed.
    private bool Store(ReassemblyEntry entry, int index, ReadOnlySpan<byte> header, int unfragmentableLength, int nextHeaderFieldOffset,
        int offset, bool more, ReadOnlySpan<byte> data, ref ReassemblyEntry? released)
    {
        bool first = offset == 0;
        long charge = data.Length; // the limit counts fragment data, so one 65,535-byte datagram always fits
        byte[] buffer = ArrayPool<byte>.Shared.Rent(data.Length);
        byte[]? headerBuffer = first ? ArrayPool<byte>.Shared.Rent(header.Length) : null;
        long budgetCharge = buffer.Length + (headerBuffer?.Length ?? 0) + (entry.Count == 0 ? EntryOverhead : 0);

        while (_bytes + charge > _maxBytes || !_context.Budget.TryReserve(budgetCharge))
        {
            var victim = _oldest == entry ? entry.Newer : _oldest;
            if (victim is null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                if (headerBuffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(headerBuffer);
                }
                _context.Counters.Drop(StackDropReason.FragmentBudgetExceeded);
                Evict(entry, StackDropReason.FragmentBudgetExceeded, ref released);
                return false;
            }
            Evict(victim, StackDropReason.FragmentBudgetExceeded, ref released);
        }

        _bytes += charge;
        entry.ChargedBytes += charge;
        entry.BudgetBytes += budgetCharge;
        data.CopyTo(buffer);
        entry.Insert(index, offset, data.Length, buffer, more);
        if (headerBuffer is not null)
        {
            header.CopyTo(headerBuffer);
            entry.SetHeader(headerBuffer, header.Length, unfragmentableLength, nextHeaderFieldOffset);
        }
        return true;
    }

    // Caller holds _lock. Removes a datagram, counts its fragments as dropped and chains it for release.
    private void Evict(ReassemblyEntry entry, StackDropReason reason, ref ReassemblyEntry? released)
    {
        if (entry.Count > 0)
        {
            _context.Counters.Drop(reason, entry.Count);
        }
        if (reason == StackDropReason.FragmentBudgetExceeded)
        {
            StackLog.ReassemblyEvicted(_context.Logger, entry.Key.Source, entry.Count);
        }
        Unlink(entry);
        entry.Newer = released;
        released = entry;
    }

    // Caller holds _lock.
    private void LinkNewest(ReassemblyEntry entry)
    {
        entry.Older = _newest;
        entry.Newer = null;
        if (_newest is null)
        {
            _oldest = entry;
        }
        else
        {
            _newest.Newer = entry;
        }
        _newest = entry;
    }

    // Caller holds _lock. Takes the entry out of the table and the age list and uncharges it from the limit.
    private void Unlink(ReassemblyEntry entry)
    {
        _entries.Remove(entry.Key);
        entry.InTable = false;
        if (entry.Older is null)
        {
            _oldest = entry.Newer;
        }
        else
        {
            entry.Older.Newer = entry.Newer;
        }
        if (entry.Newer is null)
        {
            _newest = entry.Older;
        }
        else
        {
            entry.Newer.Older = entry.Older;
        }
        entry.Older = entry.Newer = null;
        _bytes -= entry.ChargedBytes;
    }

    // Releases a chain of removed entries: buffers back to the pool, budget returned, entries pooled.
    private void Release(ReassemblyEntry? chain)
    {
        while (chain is not null)
        {
            var next = chain.Newer;
            _context.Budget.Release(chain.BudgetBytes);
            chain.Reset();
            lock (_lock)
            {
                if (!_disposed && _pool.Count < MaxPooledEntries)
                {
                    _pool.Push(chain);
                }
            }
            chain = next;
        }
    }

    private static int AssembledLength(ReassemblyEntry entry) => entry.UnfragmentableLength + entry.TotalLength;

    // The entry is out of the table: builds the unfragmented datagram in a pooled buffer.
    private static ReassembledDatagram Assemble(ReassemblyEntry entry)
    {
        int headerLength = entry.UnfragmentableLength;
        int length = AssembledLength(entry);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        Span<byte> packet = buffer.AsSpan(0, length);
        entry.Header.AsSpan(0, headerLength).CopyTo(packet);
        foreach (var fragment in entry.Fragments)
        {
            fragment.Buffer.AsSpan(0, fragment.Length).CopyTo(packet[(headerLength + fragment.Offset)..]);
        }
        if (entry.Key.IsIPv6)
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)(length - IpProtocol.Ipv6HeaderLength));
            packet[entry.NextHeaderFieldOffset] = entry.FirstProtocol;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)length);
            packet[6] &= 0x40; // keep DF, clear MF and the offset
            packet[7] = 0;
            packet[10] = packet[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(packet[10..], InternetChecksum.Compute(packet[..headerLength]));
        }
        return new ReassembledDatagram(buffer, length, headerLength);
    }

    private void OnTimer()
    {
        try
        {
            ExpireDatagrams();
        }
        catch (Exception e)
        {
            StackLog.TimerError(_context.Logger, e); // never let a timer thread die
        }
    }

    private void ExpireDatagrams()
    {
        ReassemblyEntry? expired = null;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            long now = _context.Time.GetTimestamp();
            while (_oldest is not null && _oldest.Deadline <= now)
            {
                var entry = _oldest;
                Unlink(entry);
                entry.Newer = expired;
                expired = entry;
            }
            if (_oldest is null)
            {
                _timerArmed = false;
            }
            else
            {
                var due = _context.Time.GetElapsedTime(now, _oldest.Deadline);
                _timer.Change(due < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : due, Timeout.InfiniteTimeSpan);
            }
        }

        try
        {
            for (var entry = expired; entry is not null; entry = entry.Newer)
            {
                _context.Counters.Drop(StackDropReason.FragmentTimeout, entry.Count);
                StackLog.ReassemblyTimedOut(_context.Logger, entry.Key.Source, entry.Count);
                if (entry.HasFirstFragment)
                {
                    SendTimeExceeded(entry);
                }
            }
        }
        finally
        {
            Release(expired);
        }
    }

    // RFC 792 / RFC 4443: time exceeded (fragment reassembly), quoting the first fragment.
    private void SendTimeExceeded(ReassemblyEntry entry)
    {
        var first = entry.Fragments[0];
        int length = entry.HeaderLength + first.Length;
        byte[] quote = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            entry.Header.AsSpan(0, entry.HeaderLength).CopyTo(quote);
            first.Buffer.AsSpan(0, first.Length).CopyTo(quote.AsSpan(entry.HeaderLength));
            _errors.ReassemblyTimeExceeded(entry.Key, entry.FirstProtocol, quote.AsSpan(0, length), quote.AsSpan(entry.HeaderLength, first.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(quote);
        }
    }

    private long TimestampTicks(TimeSpan span) => (long)(span.TotalSeconds * _context.Time.TimestampFrequency);
}

/// <summary>A reassembled IP packet in a pooled buffer (the receiver returns it) and the length of its header.</summary>
internal readonly record struct ReassembledDatagram(byte[] Buffer, int Length, int HeaderLength);
