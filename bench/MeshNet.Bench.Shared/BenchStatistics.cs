namespace MeshNet.Bench;

/// <summary>Statistics the end-to-end benchmark programs print (referenced by every benchmark program).</summary>
public static class BenchStatistics
{
    /// <summary>The <paramref name="p"/>-th percentile (0-100, nearest rank) of <paramref name="values"/>; NaN when empty.</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        Array.Sort(sorted);
        int rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
