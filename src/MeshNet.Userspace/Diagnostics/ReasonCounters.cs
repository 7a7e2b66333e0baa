namespace MeshNet.Userspace.Diagnostics;

/// <summary>
/// One counter per value of an enum of reasons (why a packet was dropped, say): increments are
/// atomic, reads lock-free. Shared by the public counter classes of the device and the stack, and
/// by the node's packet filter (MeshNet sees it through InternalsVisibleTo).
/// </summary>
/// <typeparam name="TReason">An enum whose values are 0..N-1.</typeparam>
internal sealed class ReasonCounters<TReason>
    where TReason : struct, Enum
{
    private static readonly TReason[] Reasons = Enum.GetValues<TReason>();

    private readonly long[] _counts = new long[Reasons.Length];

    /// <summary>The count for <paramref name="reason"/>.</summary>
    public long this[TReason reason] => Volatile.Read(ref _counts[ToIndex(reason)]);

    /// <summary>The sum of every counter.</summary>
    public long Total
    {
        get
        {
            long total = 0;
            for (int i = 0; i < _counts.Length; i++)
            {
                total += Volatile.Read(ref _counts[i]);
            }
            return total;
        }
    }

    public void Increment(TReason reason) => Interlocked.Increment(ref _counts[ToIndex(reason)]);

    public void Add(TReason reason, int count) => Interlocked.Add(ref _counts[ToIndex(reason)], count);

    /// <summary>Every counter that is not zero.</summary>
    public IReadOnlyDictionary<TReason, long> Snapshot()
    {
        var result = new Dictionary<TReason, long>();
        foreach (var reason in Reasons)
        {
            long value = this[reason];
            if (value != 0)
            {
                result[reason] = value;
            }
        }
        return result;
    }

    /// <summary><c>Reason=count, ...</c> for the non-zero counters.</summary>
    public override string ToString() => string.Join(", ", Snapshot().Select(pair => $"{pair.Key}={pair.Value}"));

    private static int ToIndex(TReason reason) => System.Runtime.CompilerServices.Unsafe.As<TReason, int>(ref reason);
}
