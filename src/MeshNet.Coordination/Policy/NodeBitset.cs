using System.Numerics;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// A growable set of node slots (one bit each). Not thread-safe: the owner's lock guards it.
/// Sets handed out by <see cref="AccessGraph"/> are never modified afterwards.
/// </summary>
internal sealed class NodeBitset
{
    private ulong[] _words;

    public NodeBitset(int capacity = 64) => _words = new ulong[Math.Max(1, (capacity + 63) / 64)];

    public static NodeBitset Empty { get; } = new();

    public bool Contains(int slot)
    {
        int word = slot >> 6;
        return word < _words.Length && (_words[word] & (1UL << (slot & 63))) != 0;
    }

    public void Add(int slot)
    {
        int word = slot >> 6;
        if (word >= _words.Length)
        {
            Array.Resize(ref _words, Math.Max(word + 1, _words.Length * 2));
        }
        _words[word] |= 1UL << (slot & 63);
    }

    public void Remove(int slot)
    {
        int word = slot >> 6;
        if (word < _words.Length)
        {
            _words[word] &= ~(1UL << (slot & 63));
        }
    }

    public void UnionWith(NodeBitset other)
    {
        if (other._words.Length > _words.Length)
        {
            Array.Resize(ref _words, other._words.Length);
        }
        for (int i = 0; i < other._words.Length; i++)
        {
            _words[i] |= other._words[i];
        }
    }

    /// <summary>The slots in this set and not in <paramref name="other"/>, ascending.</summary>
    public List<int> Except(NodeBitset other)
    {
        var result = new List<int>();
        for (int i = 0; i < _words.Length; i++)
        {
            ulong word = _words[i] & ~(i < other._words.Length ? other._words[i] : 0);
            Collect(word, i, result);
        }
        return result;
    }

    /// <summary>The slots in the set, ascending.</summary>
    public IEnumerable<int> Slots()
    {
        for (int i = 0; i < _words.Length; i++)
        {
            ulong word = _words[i];
            while (word != 0)
            {
                int bit = BitOperations.TrailingZeroCount(word);
                yield return (i << 6) + bit;
                word &= word - 1;
            }
        }
    }

    private static void Collect(ulong word, int index, List<int> into)
    {
        while (word != 0)
        {
            int bit = BitOperations.TrailingZeroCount(word);
            into.Add((index << 6) + bit);
            word &= word - 1;
        }
    }
}
