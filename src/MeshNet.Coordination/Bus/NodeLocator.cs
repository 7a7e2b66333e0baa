using System.Collections.Concurrent;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// Which tailnet and node a node key belongs to, remembered from the buses this server loaded and
/// from store lookups, so that a mass reconnect (a takeover, a move) costs no store query per map
/// stream. An entry is only a hint: the bus checks the key against the node's current record when
/// the stream attaches (a rotated or removed node is refused there). Bounded: when full, it is
/// cleared and refills. Thread-safe.
/// </summary>
internal sealed class NodeLocator
{
    private const int Capacity = 200_000;

    private readonly ConcurrentDictionary<NodeKey, (string Tailnet, ulong Id)> _entries = new();

    public bool TryFind(ReadOnlySpan<byte> nodeKey, out string tailnet, out ulong id)
    {
        if (NodeKey.TryCreate(nodeKey, out var key) && _entries.TryGetValue(key, out var entry))
        {
            (tailnet, id) = entry;
            return true;
        }
        tailnet = "";
        id = 0;
        return false;
    }

    public void Remember(StoredNode node)
    {
        if (!NodeKey.TryCreate(node.NodeKey, out var key))
        {
            return;
        }
        if (_entries.Count >= Capacity)
        {
            _entries.Clear();
        }
        _entries[key] = (node.Tailnet, node.Id);
    }

    /// <summary>A 32-byte node key as a value (four longs), for hashing without allocation.</summary>
    private readonly record struct NodeKey(ulong A, ulong B, ulong C, ulong D)
    {
        public static bool TryCreate(ReadOnlySpan<byte> bytes, out NodeKey key)
        {
            if (bytes.Length != 32)
            {
                key = default;
                return false;
            }
            key = new NodeKey(BitConverter.ToUInt64(bytes), BitConverter.ToUInt64(bytes[8..]), BitConverter.ToUInt64(bytes[16..]),
                BitConverter.ToUInt64(bytes[24..]));
            return true;
        }
    }
}
