namespace MeshNet.Sharding.Tests.Infrastructure;

/// <summary>Nearest-rank percentiles of durations, and a one-line summary.</summary>
internal static class Percentiles
{
    public static TimeSpan Of(IReadOnlyList<TimeSpan> values, double percentile)
    {
        if (values.Count == 0)
        {
            return TimeSpan.Zero;
        }
        var sorted = values.Order().ToList();
        int rank = (int)Math.Ceiling(percentile / 100 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    public static string Summary(IReadOnlyList<TimeSpan> values) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"n={values.Count} p50={Of(values, 50).TotalMilliseconds:0} ms p99={Of(values, 99).TotalMilliseconds:0} ms max={(values.Count == 0 ? 0 : values.Max().TotalMilliseconds):0} ms");
}
