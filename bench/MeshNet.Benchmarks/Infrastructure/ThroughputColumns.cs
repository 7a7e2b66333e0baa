using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>A numeric column derived from the mean time per operation.</summary>
internal abstract class MeanDerivedColumn(string id, string name, string legend) : IColumn
{
    public string Id => id;

    public string ColumnName => name;

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => legend;

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var statistics = summary[benchmarkCase]?.ResultStatistics;
        if (statistics is null || statistics.Mean <= 0)
        {
            return "NA";
        }
        return Format(benchmarkCase, statistics.Mean) ?? "-";
    }

    /// <summary>The cell for a case whose mean is <paramref name="meanNanoseconds"/> per operation; null for "-".</summary>
    protected abstract string? Format(BenchmarkCase benchmarkCase, double meanNanoseconds);

    public override string ToString() => ColumnName;
}

/// <summary>Throughput of inner IP bytes: packet size × 8 / mean time per packet.</summary>
internal sealed class GigabitsPerSecondColumn(int packetSize)
    : MeanDerivedColumn("Gbps", "Gbit/s", $"Inner IP throughput per core: {packetSize} B x 8 / mean time per packet")
{
    protected override string Format(BenchmarkCase benchmarkCase, double meanNanoseconds) =>
        (packetSize * 8 / meanNanoseconds).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Operations per second on one core (1 s / mean), shown only for benchmarks of the given categories.</summary>
internal sealed class PerSecondColumn(string name, string legend, params string[] categories)
    : MeanDerivedColumn("PerSecond." + name, name, legend)
{
    protected override string? Format(BenchmarkCase benchmarkCase, double meanNanoseconds) =>
        benchmarkCase.Descriptor.Categories.Any(categories.Contains)
            ? (1e9 / meanNanoseconds).ToString("N0", System.Globalization.CultureInfo.InvariantCulture)
            : null;
}

/// <summary>The baseline's mean divided by this case's mean, in percent: "how much of the baseline's throughput".</summary>
internal sealed class PercentOfBaselineColumn(string name, string legend) : IColumn
{
    public string Id => "PercentOfBaseline." + name;

    public string ColumnName => name;

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 1;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => legend;

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var baseline = summary.GetBaseline(summary.GetLogicalGroupKey(benchmarkCase));
        var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
        var baselineMean = baseline is null ? null : summary[baseline]?.ResultStatistics?.Mean;
        if (mean is not > 0 || baselineMean is not > 0)
        {
            return "NA";
        }
        return (100 * baselineMean.Value / mean.Value).ToString("F1", System.Globalization.CultureInfo.InvariantCulture) + " %";
    }

    public override string ToString() => ColumnName;
}
