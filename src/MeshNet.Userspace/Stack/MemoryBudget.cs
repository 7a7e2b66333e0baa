namespace MeshNet.Userspace.Stack;

/// <summary>
/// A byte budget shared by every buffer of a stack: a buffer reserves before it grows and
/// releases when it shrinks, so the stack never holds more than its limit however many
/// connections or fragments an attacker opens. Thread-safe, lock-free.
/// </summary>
internal sealed class MemoryBudget(long limit)
{
    private long _used;

    public long Limit { get; } = limit;

    public long Used => Volatile.Read(ref _used);

    /// <summary>Reserves <paramref name="bytes"/> if they fit; returns false otherwise.</summary>
    public bool TryReserve(long bytes)
    {
        while (true)
        {
            long used = Volatile.Read(ref _used);
            if (used + bytes > Limit)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _used, used + bytes, used) == used)
            {
                return true;
            }
        }
    }

    /// <summary>Returns bytes reserved earlier.</summary>
    public void Release(long bytes)
    {
        long after = Interlocked.Add(ref _used, -bytes);
        System.Diagnostics.Debug.Assert(after >= 0, "released more than reserved");
    }
}
