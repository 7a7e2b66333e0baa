using System.Buffers;

namespace MeshNet.Userspace.Stack.Ip;

/// <summary>
/// One incomplete datagram in the <see cref="FragmentReassembler"/>: its fragments sorted by
/// offset and never overlapping, the first fragment's header, what is known of its length,
/// and its place in the reassembler's age list. Entries are pooled and reused; every member is
/// guarded by the reassembler's lock while the entry is in its table, and owned by one thread
/// once removed.
/// </summary>
internal sealed class ReassemblyEntry
{
    private const int InitialFragmentCapacity = 8;

    private Fragment[] _fragments = new Fragment[InitialFragmentCapacity];

    public FragmentKey Key { get; private set; }

    /// <summary>When the entry expires (a <see cref="TimeProvider"/> timestamp).</summary>
    public long Deadline { get; private set; }

    /// <summary>The next older entry in the reassembler's age list.</summary>
    public ReassemblyEntry? Older { get; set; }

    /// <summary>The next newer entry in the reassembler's age list; also chains removed entries awaiting release.</summary>
    public ReassemblyEntry? Newer { get; set; }

    /// <summary>Fragments held (each one received packet).</summary>
    public int Count { get; private set; }

    /// <summary>Bytes of fragment data held, without overlaps.</summary>
    public int ReceivedBytes { get; private set; }

    /// <summary>The datagram's data length, once the last fragment has been seen; -1 before.</summary>
    public int TotalLength { get; private set; } = -1;

    /// <summary>The first fragment's header as received (IPv6: through the fragment header); null until it arrives.</summary>
    public byte[]? Header { get; private set; }

    public int HeaderLength { get; private set; }

    /// <summary>IPv4: the header length. IPv6: the fixed header and the extension headers before the fragment header.</summary>
    public int UnfragmentableLength { get; private set; }

    /// <summary>IPv6: where, in the header, the next-header field that names the fragment header is.</summary>
    public int NextHeaderFieldOffset { get; private set; }

    /// <summary>Bytes charged against the reassembler's limit (fragment data).</summary>
    public long ChargedBytes { get; set; }

    /// <summary>Bytes reserved against the stack's memory budget (rented buffers and bookkeeping).</summary>
    public long BudgetBytes { get; set; }

    /// <summary>True while the entry is in the reassembler's table.</summary>
    public bool InTable { get; set; }

    public bool HasFirstFragment => Header is not null;

    /// <summary>
    /// The datagram's protocol, from its first fragment: for IPv6 the next header of the first
    /// fragment's fragment header (RFC 8200 4.5), which may name another extension header.
    /// </summary>
    public byte FirstProtocol => Key.IsIPv6 ? Header![HeaderLength - IpProtocol.FragmentHeaderLength] : Key.Protocol;

    public bool IsComplete => TotalLength >= 0 && ReceivedBytes == TotalLength;

    public ReadOnlySpan<Fragment> Fragments => _fragments.AsSpan(0, Count);

    public void Start(in FragmentKey key, long deadline)
    {
        Key = key;
        Deadline = deadline;
    }

    /// <summary>
    /// Decides what a fragment covering <c>[offset, end)</c> does to this datagram, without
    /// changing anything. A fragment whose data is all held already (an exact or a subset
    /// duplicate, as Linux and gVisor treat it) is a duplicate; one that overlaps held data only
    /// partly is an overlap (RFC 5722); one that contradicts the known end is a conflict.
    /// </summary>
    public FragmentFit Classify(int offset, int end, bool more, int maxFragments, out int insertAt)
    {
        insertAt = 0;
        if (TotalLength >= 0)
        {
            if (end > TotalLength || (!more && end != TotalLength))
            {
                return FragmentFit.Conflict;
            }
        }
        else if (!more && Count > 0 && _fragments[Count - 1].End > end)
        {
            return FragmentFit.Conflict; // a last fragment that ends before data already held
        }

        // Fragments are sorted and disjoint: find the first that ends after our offset.
        int i = 0;
        while (i < Count && _fragments[i].End <= offset)
        {
            i++;
        }
        insertAt = i;
        if (i == Count || _fragments[i].Offset >= end)
        {
            if (Count >= maxFragments)
            {
                return FragmentFit.TooMany;
            }
            return FragmentFit.Insert; // falls in a hole
        }

        // Intersects held data: a duplicate only if held data covers [offset, end) contiguously.
        int covered = offset;
        for (int j = i; j < Count && _fragments[j].Offset <= covered && covered < end; j++)
        {
            covered = Math.Max(covered, _fragments[j].End);
        }
        if (_fragments[i].Offset <= offset && covered >= end)
        {
            return more || TotalLength == end ? FragmentFit.Duplicate : FragmentFit.Conflict;
        }
        return FragmentFit.Overlap;
    }

    /// <summary>Stores a fragment at <paramref name="index"/> (from <see cref="Classify"/>), taking ownership of <paramref name="buffer"/>.</summary>
    public void Insert(int index, int offset, int length, byte[] buffer, bool more)
    {
        if (Count == _fragments.Length)
        {
            Array.Resize(ref _fragments, Count * 2);
        }
        Array.Copy(_fragments, index, _fragments, index + 1, Count - index);
        _fragments[index] = new Fragment(offset, length, buffer);
        Count++;
        ReceivedBytes += length;
        if (!more)
        {
            TotalLength = offset + length;
        }
    }

    /// <summary>Keeps the first fragment's header (taking ownership of <paramref name="header"/>).</summary>
    public void SetHeader(byte[] header, int headerLength, int unfragmentableLength, int nextHeaderFieldOffset)
    {
        Header = header;
        HeaderLength = headerLength;
        UnfragmentableLength = unfragmentableLength;
        NextHeaderFieldOffset = nextHeaderFieldOffset;
    }

    /// <summary>Returns every buffer to the pool and forgets the datagram, ready for reuse.</summary>
    public void Reset()
    {
        for (int i = 0; i < Count; i++)
        {
            ArrayPool<byte>.Shared.Return(_fragments[i].Buffer);
            _fragments[i] = default;
        }
        if (Header is not null)
        {
            ArrayPool<byte>.Shared.Return(Header);
        }
        if (_fragments.Length > InitialFragmentCapacity * 4)
        {
            _fragments = new Fragment[InitialFragmentCapacity]; // do not keep a flood's worth of slots
        }
        Header = null;
        HeaderLength = UnfragmentableLength = NextHeaderFieldOffset = 0;
        Count = ReceivedBytes = 0;
        TotalLength = -1;
        ChargedBytes = BudgetBytes = 0;
        Older = Newer = null;
        InTable = false;
        Key = default;
    }
}

/// <summary>A held fragment: its place in the datagram's data and a pooled buffer with its bytes.</summary>
internal readonly record struct Fragment(int Offset, int Length, byte[] Buffer)
{
    public int End => Offset + Length;
}

/// <summary>What a fragment does to the datagram it belongs to.</summary>
internal enum FragmentFit
{
    /// <summary>It fills (part of) a hole.</summary>
    Insert,

    /// <summary>Its data is held already; it is dropped and the datagram kept.</summary>
    Duplicate,

    /// <summary>It partly overlaps held data: the datagram is dropped.</summary>
    Overlap,

    /// <summary>It contradicts the datagram's known end: the datagram is dropped.</summary>
    Conflict,

    /// <summary>The datagram holds as many fragments as allowed: the datagram is dropped.</summary>
    TooMany,
}
