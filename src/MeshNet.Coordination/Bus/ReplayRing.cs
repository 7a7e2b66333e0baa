using MeshNet.Control.V1;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The last deltas of one map session, oldest first, for resume. Fixed capacity: adding to a
/// full ring evicts the oldest. Not thread-safe: guarded by the owning bus's lock.
/// </summary>
internal sealed class ReplayRing
{
    private readonly MapResponse?[] _items;
    private int _start;
    private int _count;

    public ReplayRing(int capacity) => _items = new MapResponse?[capacity];

    public int Count => _count;

    /// <summary>Appends a message; returns the sequence of the message evicted to make room, or 0.</summary>
    public ulong Add(MapResponse message)
    {
        ulong evicted = 0;
        if (_count == _items.Length)
        {
            evicted = _items[_start]!.Sequence;
            _items[_start] = message;
            _start = (_start + 1) % _items.Length;
            return evicted;
        }
        _items[(_start + _count) % _items.Length] = message;
        _count++;
        return evicted;
    }

    /// <summary>The messages with a sequence above <paramref name="sequence"/>, oldest first.</summary>
    public List<MapResponse> After(ulong sequence)
    {
        var result = new List<MapResponse>();
        for (int i = 0; i < _count; i++)
        {
            var message = _items[(_start + i) % _items.Length]!;
            if (message.Sequence > sequence)
            {
                result.Add(message);
            }
        }
        return result;
    }

    public void Clear()
    {
        Array.Clear(_items);
        _start = 0;
        _count = 0;
    }
}
