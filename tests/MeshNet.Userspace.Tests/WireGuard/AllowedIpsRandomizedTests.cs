using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>
/// AllowedIps against a naive reference (a dictionary scanned linearly for the longest match),
/// and under concurrent readers and a writer.
/// </summary>
[Trait("Category", "Unit")]
public sealed class AllowedIpsRandomizedTests
{
    private sealed class Peer(int id)
    {
        public int Id { get; } = id;

        public override string ToString() => $"peer{Id}";
    }

    private readonly record struct Key(bool IsIPv6, UInt128 Bits, int Length);

    // The obviously-correct model: a set of (prefix -> peer), searched exhaustively.
    private sealed class Reference
    {
        private readonly Dictionary<Key, Peer> _map = new();

        public int Count => _map.Count;

        public void Insert(IPNetwork prefix, Peer peer) => _map[KeyOf(prefix)] = peer;

        public bool Remove(IPNetwork prefix, Peer peer)
        {
            var key = KeyOf(prefix);
            return _map.TryGetValue(key, out var owner) && owner == peer && _map.Remove(key);
        }

        public int RemoveByValue(Peer peer)
        {
            var keys = _map.Where(kv => kv.Value == peer).Select(kv => kv.Key).ToList();
            keys.ForEach(k => _map.Remove(k));
            return keys.Count;
        }

        public void ReplaceForValue(Peer peer, IEnumerable<IPNetwork> prefixes)
        {
            RemoveByValue(peer);
            foreach (var prefix in prefixes)
            {
                Insert(prefix, peer);
            }
        }

        public Peer? Lookup(byte[] address)
        {
            bool v6 = address.Length == 16;
            UInt128 bits = ToBits(address);
            Peer? best = null;
            int bestLength = -1;
            foreach (var (key, peer) in _map)
            {
                if (key.IsIPv6 == v6 && key.Length > bestLength && (bits & MaskOf(key.Length)) == key.Bits)
                {
                    best = peer;
                    bestLength = key.Length;
                }
            }
            return best;
        }

        public List<Key> PrefixesOf(Peer peer) =>
            _map.Where(kv => kv.Value == peer).Select(kv => kv.Key)
                .OrderBy(k => k.IsIPv6).ThenBy(k => k.Bits).ThenBy(k => k.Length).ToList();
    }

    private static UInt128 MaskOf(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);

    private static UInt128 ToBits(byte[] address) => address.Length == 4
        ? (UInt128)BinaryPrimitives.ReadUInt32BigEndian(address) << 96
        : new UInt128(BinaryPrimitives.ReadUInt64BigEndian(address), BinaryPrimitives.ReadUInt64BigEndian(address.AsSpan(8)));

    private static Key KeyOf(IPNetwork prefix)
    {
        var bytes = prefix.BaseAddress.GetAddressBytes();
        return new Key(bytes.Length == 16, ToBits(bytes) & MaskOf(prefix.PrefixLength), prefix.PrefixLength);
    }

    // Addresses cluster around a few bases so that prefixes nest, overlap and share long paths.
    private sealed class Generator(int seed)
    {
        private readonly Random _random = new(seed);
        private readonly byte[][] _bases4 = MakeBases(new Random(seed + 1), 4);
        private readonly byte[][] _bases16 = MakeBases(new Random(seed + 2), 16);

        public Random Random => _random;

        private static byte[][] MakeBases(Random random, int size) =>
            Enumerable.Range(0, 6).Select(_ =>
            {
                var b = new byte[size];
                random.NextBytes(b);
                return b;
            }).ToArray();

        // Near a base: keep a random number of leading bits, randomize the rest (sometimes fully random).
        public byte[] Address(bool v6)
        {
            int size = v6 ? 16 : 4;
            var bytes = new byte[size];
            _random.NextBytes(bytes);
            if (_random.Next(8) == 0)
            {
                return bytes;
            }
            var template = (v6 ? _bases16 : _bases4)[_random.Next(6)];
            int keep = _random.Next(size * 8 + 1);
            for (int bit = 0; bit < keep; bit++)
            {
                int mask = 0x80 >> (bit % 8);
                bytes[bit / 8] = (byte)((bytes[bit / 8] & ~mask) | (template[bit / 8] & mask));
            }
            return bytes;
        }

        public IPNetwork Prefix()
        {
            bool v6 = _random.Next(2) == 0;
            var bytes = Address(v6);
            int length = _random.Next(bytes.Length * 8 + 1);
            for (int bit = length; bit < bytes.Length * 8; bit++)
            {
                bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
            }
            return new IPNetwork(new IPAddress(bytes), length);
        }
    }

    [Fact]
    public void MatchesNaiveReference()
    {
        var gen = new Generator(20240601);
        var random = gen.Random;
        var peers = Enumerable.Range(0, 24).Select(i => new Peer(i)).ToArray();
        var table = new AllowedIps<Peer>();
        var reference = new Reference();
        var known = new List<IPNetwork>();
        int lookups = 0;

        for (int op = 0; op < 6_000; op++)
        {
            var peer = peers[random.Next(peers.Length)];
            // Per mille: mostly inserts, some removals; whole-value operations are rare because
            // each one wipes a 24th of the table.
            int roll = random.Next(1000);
            if (roll < 800 || roll >= 960)
            {
                var prefix = gen.Prefix();
                known.Add(prefix);
                table.Insert(prefix, peer);
                reference.Insert(prefix, peer);
            }
            else if (roll < 950 && known.Count > 0)
            {
                // Remove a known prefix, with its owner or (sometimes) another peer.
                var prefix = known[random.Next(known.Count)];
                table.Remove(prefix, peer).Should().Be(reference.Remove(prefix, peer), "op {0}: Remove({1}, {2})", op, prefix, peer);
            }
            else if (roll < 953)
            {
                table.RemoveByValue(peer).Should().Be(reference.RemoveByValue(peer), "op {0}: RemoveByValue({1})", op, peer);
            }
            else if (roll < 960)
            {
                var prefixes = Enumerable.Range(0, random.Next(6)).Select(_ => random.Next(3) == 0 && known.Count > 0 ? known[random.Next(known.Count)] : gen.Prefix()).ToList();
                known.AddRange(prefixes);
                table.ReplaceForValue(peer, prefixes);
                reference.ReplaceForValue(peer, prefixes);
            }

            if (op % 25 == 0)
            {
                for (int i = 0; i < 100; i++)
                {
                    var address = gen.Address(random.Next(2) == 0);
                    table.Lookup(address).Should().BeSameAs(reference.Lookup(address), "op {0}: Lookup({1})", op, new IPAddress(address));
                    lookups++;
                }
                table.Count.Should().Be(reference.Count);
            }
        }

        lookups.Should().BeGreaterThan(20_000);
        reference.Count.Should().BeGreaterThan(1_000, "the test must exercise a populated trie");
        table.Count.Should().Be(reference.Count);
        table.NodeCount().Should().BeLessThanOrEqualTo(2 * reference.Count, "path compression bounds the trie size");
        foreach (var peer in peers)
        {
            table.PrefixesOf(peer).Select(KeyOf).Should().Equal(reference.PrefixesOf(peer), "PrefixesOf({0})", peer);
        }

        // Every known prefix's own base address resolves like the reference.
        foreach (var prefix in known)
        {
            var address = prefix.BaseAddress.GetAddressBytes();
            table.Lookup(address).Should().BeSameAs(reference.Lookup(address));
        }

        foreach (var peer in peers)
        {
            table.RemoveByValue(peer);
        }
        table.Count.Should().Be(0);
        table.NodeCount().Should().Be(0);
    }

    [Fact]
    public void ConcurrentReaders_SeeOnlyOldOrNewState()
    {
        Peer a = new(1), b = new(2), fallback = new(3);
        var table = new AllowedIps<Peer>();
        table.Insert(IPNetwork.Parse("0.0.0.0/0"), fallback);
        table.Insert(IPNetwork.Parse("::/0"), fallback);

        // a always covers 10.1.2.3 and fd00:1:2::3, through one prefix or another: a reader seeing
        // the fallback there would have observed a half-applied ReplaceForValue.
        IPNetwork[] stateOne = [IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("fd00::/16")];
        IPNetwork[] stateTwo = [IPNetwork.Parse("10.1.0.0/16"), IPNetwork.Parse("10.1.2.3/32"), IPNetwork.Parse("fd00:1::/32")];
        table.ReplaceForValue(a, stateOne);

        byte[] covered4 = IPAddress.Parse("10.1.2.3").GetAddressBytes();
        byte[] covered6 = IPAddress.Parse("fd00:1:2::3").GetAddressBytes();
        byte[] sometimes4 = IPAddress.Parse("10.9.9.9").GetAddressBytes();
        byte[] bOrA4 = IPAddress.Parse("10.1.2.200").GetAddressBytes();

        using var done = new CancellationTokenSource();
        long readerLookups = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();

        void Reader()
        {
            long n = 0;
            while (!done.IsCancellationRequested)
            {
                var r1 = table.Lookup(covered4);
                var r2 = table.Lookup(covered6);
                var r3 = table.Lookup(sometimes4);
                var r4 = table.Lookup(bOrA4);
                if (r1 != a)
                {
                    failures.Enqueue($"10.1.2.3 -> {r1}");
                }
                if (r2 != a)
                {
                    failures.Enqueue($"fd00:1:2::3 -> {r2}");
                }
                if (r3 != a && r3 != fallback)
                {
                    failures.Enqueue($"10.9.9.9 -> {r3}");
                }
                if (r4 != a && r4 != b)
                {
                    failures.Enqueue($"10.1.2.200 -> {r4}");
                }
                n += 4;
            }
            Interlocked.Add(ref readerLookups, n);
        }

        var readers = new[] { new Thread(Reader), new Thread(Reader) };
        foreach (var thread in readers)
        {
            thread.Start();
        }

        try
        {
            for (int i = 0; i < 20_000; i++)
            {
                table.ReplaceForValue(a, i % 2 == 0 ? stateTwo : stateOne);
                if (i % 3 == 0)
                {
                    table.Insert(IPNetwork.Parse("10.1.2.128/25"), b);
                }
                else if (i % 3 == 1)
                {
                    table.Remove(IPNetwork.Parse("10.1.2.128/25"), b);
                }
                else
                {
                    table.RemoveByValue(b);
                }
            }
        }
        finally
        {
            done.Cancel();
            foreach (var thread in readers)
            {
                thread.Join();
            }
        }

        failures.Should().BeEmpty();
        Interlocked.Read(ref readerLookups).Should().BeGreaterThan(0);
    }
}
