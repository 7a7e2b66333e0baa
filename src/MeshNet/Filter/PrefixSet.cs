using MeshNet.Userspace.Net;

namespace MeshNet.Filter;

/// <summary>
/// A set of address prefixes, compiled for matching on the data path: one hash set of masked
/// addresses per (family, prefix length) present, so that a lookup costs one masked hash probe
/// per distinct length (typically one or two: host prefixes and a few networks), whatever the
/// number of prefixes. "*" (any address) is a flag. Immutable and thread-safe after
/// construction; <see cref="Contains"/> never allocates.
/// </summary>
internal sealed class PrefixSet
{
    private readonly Bucket[] _buckets;

    private PrefixSet(bool matchesAll, Bucket[] buckets)
    {
        MatchesAll = matchesAll;
        _buckets = buckets;
    }

    /// <summary>A set that matches nothing.</summary>
    public static PrefixSet Empty { get; } = new(false, []);

    /// <summary>A set that matches every address.</summary>
    public static PrefixSet All { get; } = new(true, []);

    /// <summary>True for "*".</summary>
    public bool MatchesAll { get; }

    /// <summary>True when no address matches.</summary>
    public bool IsEmpty => !MatchesAll && _buckets.Length == 0;

    /// <summary>Builds a set; <paramref name="matchesAll"/> makes the prefixes irrelevant.</summary>
    public static PrefixSet Create(IEnumerable<NetPrefix> prefixes, bool matchesAll)
    {
        if (matchesAll)
        {
            return All;
        }
        var byLength = new Dictionary<(bool IsIPv6, int Length128), HashSet<UInt128>>();
        foreach (var prefix in prefixes)
        {
            var key = (prefix.IsIPv6, prefix.Length128);
            if (!byLength.TryGetValue(key, out var set))
            {
                byLength[key] = set = [];
            }
            set.Add(prefix.Bits);
        }
        if (byLength.Count == 0)
        {
            return Empty;
        }
        // Shorter prefixes first: one network often covers what many hosts would.
        var buckets = byLength
            .OrderBy(pair => pair.Key.Length128)
            .Select(pair => new Bucket(pair.Key.IsIPv6, NetPrefix.MaskOf(pair.Key.Length128), pair.Value))
            .ToArray();
        return new PrefixSet(false, buckets);
    }

    /// <summary>True when <paramref name="address"/> is inside one of the prefixes.</summary>
    public bool Contains(NetAddress address)
    {
        if (MatchesAll)
        {
            return true;
        }
        if (address.IsEmpty)
        {
            return false;
        }
        bool ipv6 = address.IsIPv6;
        var bits = address.Bits;
        foreach (var bucket in _buckets)
        {
            if (bucket.IsIPv6 == ipv6 && bucket.Values.Contains(bits & bucket.Mask))
            {
                return true;
            }
        }
        return false;
    }

    private sealed record Bucket(bool IsIPv6, UInt128 Mask, HashSet<UInt128> Values);
}
