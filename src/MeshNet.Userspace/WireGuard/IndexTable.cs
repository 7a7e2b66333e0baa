using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// What a local (receiver) index refers to: a handshake in progress or an established keypair.
/// Immutable.
/// </summary>
internal sealed class IndexEntry(Peer peer, Handshake? handshake, Keypair? keypair)
{
    public Peer Peer { get; } = peer;

    public Handshake? Handshake { get; } = handshake;

    public Keypair? Keypair { get; } = keypair;
}

/// <summary>
/// The device's table of local indices: random, unique 32-bit values that peers echo back as
/// the receiver of responses, cookie replies and transport messages. Lookups are lock-free
/// and allocation-free (the per-packet path); inserts happen once per handshake. Thread-safe.
/// </summary>
internal sealed class IndexTable
{
    private readonly ConcurrentDictionary<uint, IndexEntry> _entries = new();

    /// <summary>Number of live indices.</summary>
    public int Count => _entries.Count;

    /// <summary>Allocates a fresh random index for a handshake of <paramref name="peer"/>.</summary>
    public uint NewIndexForHandshake(Peer peer, Handshake handshake)
    {
        var entry = new IndexEntry(peer, handshake, null);
        Span<byte> random = stackalloc byte[4];
        while (true)
        {
            RandomNumberGenerator.Fill(random);
            uint index = BinaryPrimitives.ReadUInt32LittleEndian(random);
            if (index != 0 && _entries.TryAdd(index, entry))
            {
                return index;
            }
        }
    }

    /// <summary>Points an index that named a handshake at another handshake object of the same peer.</summary>
    public void RepointHandshake(uint index, Peer peer, Handshake handshake) =>
        _entries[index] = new IndexEntry(peer, handshake, null);

    /// <summary>Points an index that named a handshake at the keypair derived from it.</summary>
    public void SwapIndexForKeypair(uint index, Keypair keypair) =>
        _entries[index] = new IndexEntry(keypair.Peer, null, keypair);

    /// <summary>Forgets an index (no-op for 0 or unknown indices).</summary>
    public void Delete(uint index)
    {
        if (index != 0)
        {
            _entries.TryRemove(index, out _);
        }
    }

    /// <summary>Looks an index up.</summary>
    public bool TryLookup(uint index, out IndexEntry entry) => _entries.TryGetValue(index, out entry!);

    /// <summary>Looks up the keypair an index names (null for handshakes and unknown indices).</summary>
    public Keypair? LookupKeypair(uint index) =>
        _entries.TryGetValue(index, out var entry) ? entry.Keypair : null;
}
