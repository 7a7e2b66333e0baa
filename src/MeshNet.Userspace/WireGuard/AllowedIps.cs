using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// The cryptokey-routing table: maps IP prefixes to values (peers) and answers longest-prefix
/// match queries, with IPv4 and IPv6 in separate tries.
/// </summary>
/// <remarks>
/// <para>Semantics (WireGuard's): a prefix belongs to at most one value; inserting a prefix that
/// another value owns moves it. Prefixes are canonicalized (host bits cleared), so 10.1.2.3/8
/// and 10.0.0.0/8 are the same prefix. Values are compared by reference. An IPv4-mapped IPv6
/// prefix is an IPv6 prefix and only matches 16-byte addresses.</para>
/// <para>Structure: a path-compressed binary trie per family, immutable once published. Every
/// write builds new nodes along the changed paths (sharing the rest) and publishes a new root
/// snapshot with a single volatile write.</para>
/// <para>Thread safety: <see cref="Lookup"/> is lock-free and allocation-free, may run on any
/// number of threads concurrently with writers, and observes either the state before or the
/// state after each write (for <see cref="ReplaceForValue"/> and <see cref="RemoveByValue"/>,
/// before or after the whole operation, never a mixture). Writers are serialized by an internal
/// lock; a write costs O(prefix bits) node allocations per prefix touched.</para>
/// </remarks>
/// <typeparam name="T">The value type, typically a peer.</typeparam>
internal sealed class AllowedIps<T>
    where T : class
{
    private const int IPv4Bits = 32;
    private const int IPv6Bits = 128;

    // The published tries. Replaced (never mutated) under _writeLock; read with Volatile.Read.
    private Roots _roots = Roots.Empty;

    // Serializes writers. Guards _byValue and _count; readers never take it.
    private readonly Lock _writeLock = new();

    // Writer-side index: the prefixes each value owns. Lets RemoveByValue and ReplaceForValue
    // touch only that value's paths instead of scanning the trie.
    private readonly Dictionary<T, HashSet<Prefix>> _byValue = new(ReferenceEqualityComparer.Instance);
    private int _count;

    /// <summary>The number of prefixes in the table (both families).</summary>
    public int Count
    {
        get
        {
            lock (_writeLock)
            {
                return _count;
            }
        }
    }

    /// <summary>
    /// Assigns <paramref name="prefix"/> to <paramref name="value"/>, taking it from any value
    /// that owned it before.
    /// </summary>
    /// <exception cref="ArgumentException">The prefix is not an IPv4 or IPv6 prefix of valid length.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public void Insert(IPNetwork prefix, T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var p = Prefix.From(prefix, nameof(prefix));
        lock (_writeLock)
        {
            var roots = _roots;
            Node? v4 = roots.V4, v6 = roots.V6;
            InsertLocked(ref (p.IsIPv6 ? ref v6 : ref v4), p, value);
            Publish(roots, v4, v6);
        }
    }

    /// <summary>
    /// Removes <paramref name="prefix"/> if <paramref name="value"/> currently owns it.
    /// </summary>
    /// <returns>True when the prefix was removed.</returns>
    /// <exception cref="ArgumentException">The prefix is not an IPv4 or IPv6 prefix of valid length.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public bool Remove(IPNetwork prefix, T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var p = Prefix.From(prefix, nameof(prefix));
        lock (_writeLock)
        {
            if (!_byValue.TryGetValue(value, out var owned) || !owned.Contains(p))
            {
                return false;
            }
            var roots = _roots;
            Node? v4 = roots.V4, v6 = roots.V6;
            RemoveLocked(ref (p.IsIPv6 ? ref v6 : ref v4), p, value);
            Forget(value, owned, p);
            Publish(roots, v4, v6);
            return true;
        }
    }

    /// <summary>Removes every prefix <paramref name="value"/> owns, in one step as seen by readers.</summary>
    /// <returns>The number of prefixes removed.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public int RemoveByValue(T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        lock (_writeLock)
        {
            if (!_byValue.Remove(value, out var owned))
            {
                return 0;
            }
            var roots = _roots;
            Node? v4 = roots.V4, v6 = roots.V6;
            foreach (var p in owned)
            {
                RemoveLocked(ref (p.IsIPv6 ? ref v6 : ref v4), p, value);
            }
            _count -= owned.Count;
            Publish(roots, v4, v6);
            return owned.Count;
        }
    }

    /// <summary>
    /// Makes <paramref name="prefixes"/> exactly the set of prefixes <paramref name="value"/>
    /// owns: prefixes it owned and that are not listed are removed, listed prefixes owned by
    /// other values are taken from them. Readers see the old set or the new one, never a mix.
    /// An empty list removes the value from the table.
    /// </summary>
    /// <exception cref="ArgumentException">A prefix is invalid; the table is then left unchanged.</exception>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public void ReplaceForValue(T value, IEnumerable<IPNetwork> prefixes)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(prefixes);

        // Validate everything before touching the table.
        var wanted = new HashSet<Prefix>();
        foreach (var prefix in prefixes)
        {
            wanted.Add(Prefix.From(prefix, nameof(prefixes)));
        }

        lock (_writeLock)
        {
            var roots = _roots;
            Node? v4 = roots.V4, v6 = roots.V6;
            if (_byValue.TryGetValue(value, out var owned))
            {
                foreach (var p in owned)
                {
                    if (!wanted.Contains(p))
                    {
                        RemoveLocked(ref (p.IsIPv6 ? ref v6 : ref v4), p, value);
                        _count--;
                    }
                }
                _byValue.Remove(value);
            }
            foreach (var p in wanted)
            {
                if (owned is null || !owned.Contains(p))
                {
                    InsertTrieLocked(ref (p.IsIPv6 ? ref v6 : ref v4), p, value);
                }
            }
            if (wanted.Count > 0)
            {
                _byValue.Add(value, wanted);
            }
            Publish(roots, v4, v6);
        }
    }

    /// <summary>
    /// Returns the value owning the longest prefix that contains <paramref name="address"/>,
    /// or null when no prefix does. Lock-free and allocation-free.
    /// </summary>
    /// <param name="address">An IPv4 (4 bytes) or IPv6 (16 bytes) address in network order.</param>
    /// <exception cref="ArgumentException">The address is neither 4 nor 16 bytes long.</exception>
    public T? Lookup(ReadOnlySpan<byte> address)
    {
        var roots = Volatile.Read(ref _roots);
        if (address.Length == 4)
        {
            return Find(roots.V4, (UInt128)BinaryPrimitives.ReadUInt32BigEndian(address) << (IPv6Bits - IPv4Bits));
        }
        if (address.Length == 16)
        {
            return Find(roots.V6, new UInt128(
                BinaryPrimitives.ReadUInt64BigEndian(address),
                BinaryPrimitives.ReadUInt64BigEndian(address[8..])));
        }
        throw new ArgumentException($"An IP address is 4 or 16 bytes, not {address.Length}.", nameof(address));
    }

    /// <summary>
    /// The prefixes <paramref name="value"/> owns, IPv4 first, each family in address order
    /// (shorter prefixes first on ties). A copy: later writes do not affect it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null.</exception>
    public IReadOnlyList<IPNetwork> PrefixesOf(T value)
    {
        ArgumentNullException.ThrowIfNull(value);
        Prefix[] owned;
        lock (_writeLock)
        {
            if (!_byValue.TryGetValue(value, out var set))
            {
                return [];
            }
            owned = [.. set];
        }
        Array.Sort(owned);
        var result = new IPNetwork[owned.Length];
        for (int i = 0; i < owned.Length; i++)
        {
            result[i] = owned[i].ToIPNetwork();
        }
        return result;
    }

    /// <summary>
    /// The number of trie nodes currently published (diagnostics and tests: with path
    /// compression it never exceeds twice the number of prefixes).
    /// </summary>
    internal int NodeCount()
    {
        var roots = Volatile.Read(ref _roots);
        return CountNodes(roots.V4) + CountNodes(roots.V6);

        static int CountNodes(Node? node) =>
            node is null ? 0 : 1 + CountNodes(node.Zero) + CountNodes(node.One);
    }

    // Inserts into the trie and keeps the index and count in step. Caller holds _writeLock.
    private void InsertLocked(ref Node? root, in Prefix p, T value)
    {
        if (_byValue.TryGetValue(value, out var owned) && owned.Contains(p))
        {
            return; // already ours: nothing changes
        }
        InsertTrieLocked(ref root, p, value);
        if (owned is null)
        {
            owned = [];
            _byValue.Add(value, owned);
        }
        owned.Add(p);
    }

    // Inserts into the trie; takes the prefix away from a previous owner in the index and
    // counts it when it is new. Does not record it for `value`. Caller holds _writeLock.
    private void InsertTrieLocked(ref Node? root, in Prefix p, T value)
    {
        T? previous = null;
        root = Insert(root, p, value, ref previous);
        if (previous is null)
        {
            _count++;
        }
        else if (!ReferenceEquals(previous, value))
        {
            Forget(previous, _byValue[previous], p);
            _count++; // Forget decremented it
        }
    }

    // Removes from the trie, which must hold p owned by value. Caller holds _writeLock.
    private static void RemoveLocked(ref Node? root, in Prefix p, T value)
    {
        bool removed = false;
        root = Remove(root, p, value, ref removed);
        if (!removed)
        {
            throw new InvalidOperationException("AllowedIps index and trie disagree.");
        }
    }

    // Drops p from a value's index entry (not from the trie). Caller holds _writeLock.
    private void Forget(T value, HashSet<Prefix> owned, in Prefix p)
    {
        owned.Remove(p);
        if (owned.Count == 0)
        {
            _byValue.Remove(value);
        }
        _count--;
    }

    private void Publish(Roots old, Node? v4, Node? v6)
    {
        if (!ReferenceEquals(old.V4, v4) || !ReferenceEquals(old.V6, v6))
        {
            Volatile.Write(ref _roots, new Roots(v4, v6));
        }
    }

    // Longest-prefix match: walk down while the node's prefix contains the key, remembering
    // the last value passed. A compressed node skips bits, so its whole prefix is compared.
    private static T? Find(Node? node, UInt128 key)
    {
        T? best = null;
        while (node is not null && ((key ^ node.Bits) & node.Mask) == UInt128.Zero)
        {
            best = node.Value ?? best;
            if (node.Length == IPv6Bits)
            {
                break;
            }
            node = BitAt(key, node.Length) == 0 ? node.Zero : node.One;
        }
        return best;
    }

    // Returns the new subtree with p owned by value; `previous` receives the former owner of
    // exactly p (null if none). Untouched subtrees are shared, never copied.
    private static Node Insert(Node? node, in Prefix p, T value, ref T? previous)
    {
        if (node is null)
        {
            return new Node(p.Bits, p.Length, value, null, null);
        }

        int common = Math.Min(Math.Min(node.Length, p.Length), CommonBits(node.Bits, p.Bits));
        if (common == node.Length)
        {
            if (node.Length == p.Length)
            {
                previous = node.Value;
                return ReferenceEquals(previous, value) ? node : new Node(node.Bits, node.Length, value, node.Zero, node.One);
            }
            // node's prefix contains p: descend on the first bit past it.
            return BitAt(p.Bits, node.Length) == 0
                ? new Node(node.Bits, node.Length, node.Value, Insert(node.Zero, p, value, ref previous), node.One)
                : new Node(node.Bits, node.Length, node.Value, node.Zero, Insert(node.One, p, value, ref previous));
        }

        if (common == p.Length)
        {
            // p contains node's prefix: p becomes node's parent.
            return BitAt(node.Bits, p.Length) == 0
                ? new Node(p.Bits, p.Length, value, node, null)
                : new Node(p.Bits, p.Length, value, null, node);
        }

        // They diverge at bit `common`: a value-less branch node takes both.
        var leaf = new Node(p.Bits, p.Length, value, null, null);
        return BitAt(p.Bits, common) == 0
            ? new Node(p.Bits & MaskOf(common), common, null, leaf, node)
            : new Node(p.Bits & MaskOf(common), common, null, node, leaf);
    }

    // Returns the subtree without p if `owner` holds it (setting `removed`), else the same
    // subtree. Keeps the compression invariant: a value-less node always has two children.
    private static Node? Remove(Node? node, in Prefix p, T owner, ref bool removed)
    {
        if (node is null || node.Length > p.Length || ((p.Bits ^ node.Bits) & node.Mask) != UInt128.Zero)
        {
            return node;
        }
        if (node.Length == p.Length)
        {
            if (!ReferenceEquals(node.Value, owner))
            {
                return node;
            }
            removed = true;
            return Join(node, null, node.Zero, node.One);
        }
        if (BitAt(p.Bits, node.Length) == 0)
        {
            var zero = Remove(node.Zero, p, owner, ref removed);
            return ReferenceEquals(zero, node.Zero) ? node : Join(node, node.Value, zero, node.One);
        }
        var one = Remove(node.One, p, owner, ref removed);
        return ReferenceEquals(one, node.One) ? node : Join(node, node.Value, node.Zero, one);
    }

    // A node with `template`'s prefix and the given contents, or its only child (or nothing)
    // when it would carry no value and fewer than two children.
    private static Node? Join(Node template, T? value, Node? zero, Node? one)
    {
        if (value is null && (zero is null || one is null))
        {
            return zero ?? one;
        }
        return new Node(template.Bits, template.Length, value, zero, one);
    }

    private static int BitAt(UInt128 bits, int index) => (int)(bits >> (IPv6Bits - 1 - index)) & 1;

    private static int CommonBits(UInt128 a, UInt128 b) => (int)UInt128.LeadingZeroCount(a ^ b);

    private static UInt128 MaskOf(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (IPv6Bits - length);

    // Immutable once constructed (all fields readonly), hence safe to share between snapshots
    // and to read without locks after a volatile publication.
    private sealed class Node
    {
        public readonly UInt128 Bits;   // the prefix, left-aligned in 128 bits, host bits zero
        public readonly UInt128 Mask;   // MaskOf(Length), precomputed for the lookup loop
        public readonly int Length;     // prefix length; children are strictly longer
        public readonly T? Value;       // owner of exactly this prefix, or null for a branch node
        public readonly Node? Zero;     // subtree whose bit at Length is 0
        public readonly Node? One;      // subtree whose bit at Length is 1

        public Node(UInt128 bits, int length, T? value, Node? zero, Node? one)
        {
            Bits = bits;
            Mask = MaskOf(length);
            Length = length;
            Value = value;
            Zero = zero;
            One = one;
        }
    }

    private sealed class Roots(Node? v4, Node? v6)
    {
        public static readonly Roots Empty = new(null, null);

        public readonly Node? V4 = v4;
        public readonly Node? V6 = v6;
    }

    // A canonical prefix: bits left-aligned in 128 bits (IPv4 in the top 32), host bits zero.
    private readonly record struct Prefix(UInt128 Bits, int Length, bool IsIPv6) : IComparable<Prefix>
    {
        public static Prefix From(IPNetwork network, string paramName)
        {
            var address = network.BaseAddress
                ?? throw new ArgumentException("The prefix has no base address.", paramName);
            int maxLength = address.AddressFamily switch
            {
                AddressFamily.InterNetwork => IPv4Bits,
                AddressFamily.InterNetworkV6 => IPv6Bits,
                _ => throw new ArgumentException($"Prefix {network} is neither IPv4 nor IPv6.", paramName),
            };
            int length = network.PrefixLength;
            if ((uint)length > (uint)maxLength)
            {
                throw new ArgumentException($"Prefix length {length} is outside 0..{maxLength} for {address}.", paramName);
            }
            Span<byte> bytes = stackalloc byte[16];
            if (!address.TryWriteBytes(bytes, out int written) || written * 8 != maxLength)
            {
                throw new ArgumentException($"Prefix {network} has an unreadable base address.", paramName);
            }
            UInt128 bits = maxLength == IPv4Bits
                ? (UInt128)BinaryPrimitives.ReadUInt32BigEndian(bytes) << (IPv6Bits - IPv4Bits)
                : new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
            return new Prefix(bits & MaskOf(length), length, maxLength == IPv6Bits);
        }

        public IPNetwork ToIPNetwork()
        {
            Span<byte> bytes = stackalloc byte[16];
            BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)(Bits >> 64));
            BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], (ulong)Bits);
            var address = new IPAddress(IsIPv6 ? bytes : bytes[..4]);
            return new IPNetwork(address, Length);
        }

        public int CompareTo(Prefix other)
        {
            int c = IsIPv6.CompareTo(other.IsIPv6);
            if (c == 0)
            {
                c = Bits.CompareTo(other.Bits);
            }
            return c != 0 ? c : Length.CompareTo(other.Length);
        }
    }
}
