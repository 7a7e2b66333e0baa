namespace MeshNet.TestSupport;

/// <summary>
/// Measures what code allocates on the calling thread, as the least of a few runs. Code the JIT
/// re-optimizes in the background (tiered compilation) can allocate once while its new version is
/// installed, on a busy machine even after a warm-up; an allocation made on every call shows in
/// every run, so the least run is the honest figure.
/// </summary>
public static class AllocationMeter
{
    /// <summary>The fewest bytes <paramref name="action"/> allocated in up to <paramref name="runs"/> runs (stops at the first run that allocated nothing).</summary>
    public static long LeastOf(int runs, Action action)
    {
        long least = long.MaxValue;
        for (int run = 0; run < runs && least > 0; run++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            action();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}
