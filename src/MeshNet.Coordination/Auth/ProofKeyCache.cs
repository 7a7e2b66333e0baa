using System.Security.Cryptography;

namespace MeshNet.Coordination.Auth;

/// <summary>
/// Derived proof keys by node key, least recently used evicted beyond the capacity (evicted
/// keys are zeroed). Saves an X25519 agreement per call. Thread-safe.
/// </summary>
internal sealed class ProofKeyCache
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(UInt128, UInt128), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _recency = new();
    private readonly int _capacity;

    public ProofKeyCache(int capacity) => _capacity = capacity;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Copies the cached proof key of <paramref name="nodeKey"/> into <paramref name="proofKey"/>.</summary>
    public bool TryGet(ReadOnlySpan<byte> nodeKey, Span<byte> proofKey)
    {
        var key = KeyOf(nodeKey);
        lock (_gate)
        {
            if (!_entries.TryGetValue(key, out var node))
            {
                return false;
            }
            _recency.Remove(node);
            _recency.AddFirst(node);
            node.Value.ProofKey.CopyTo(proofKey);
            return true;
        }
    }

    public void Add(ReadOnlySpan<byte> nodeKey, ReadOnlySpan<byte> proofKey)
    {
        var key = KeyOf(nodeKey);
        lock (_gate)
        {
            if (_entries.ContainsKey(key))
            {
                return;
            }
            var node = _recency.AddFirst(new Entry(key, proofKey.ToArray()));
            _entries.Add(key, node);
            while (_entries.Count > _capacity)
            {
                var last = _recency.Last!;
                _recency.RemoveLast();
                _entries.Remove(last.Value.Key);
                CryptographicOperations.ZeroMemory(last.Value.ProofKey);
            }
        }
    }

    private static (UInt128, UInt128) KeyOf(ReadOnlySpan<byte> nodeKey) =>
        (System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(nodeKey),
         System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(nodeKey[16..]));

    private sealed record Entry((UInt128, UInt128) Key, byte[] ProofKey);
}
