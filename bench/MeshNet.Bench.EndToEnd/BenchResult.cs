namespace MeshNet.Bench.EndToEnd;

/// <summary>What one scenario measured, or why it could not run.</summary>
/// <param name="Scenario">The scenario's label in the table.</param>
/// <param name="Bytes">Payload bytes the receiver got.</param>
/// <param name="Elapsed">Wall time of the transfer.</param>
/// <param name="CpuTime">CPU time (user + system) of everything on the path, as <paramref name="CpuSource"/> says.</param>
/// <param name="CpuSource">Whose CPU time <paramref name="CpuTime"/> is.</param>
/// <param name="TargetGbps">The throughput the scenario must reach, or null.</param>
/// <param name="Problem">Why it did not run (null when it did).</param>
internal sealed record BenchResult(
    string Scenario,
    long Bytes,
    TimeSpan Elapsed,
    TimeSpan CpuTime,
    string CpuSource,
    double? TargetGbps,
    string? Problem = null)
{
    public bool Ran => Problem is null;

    public double Gbps => Elapsed > TimeSpan.Zero ? Bytes * 8 / Elapsed.TotalSeconds / 1e9 : 0;

    /// <summary>CPU seconds spent per GiB moved.</summary>
    public double CpuSecondsPerGiB => Bytes > 0 ? CpuTime.TotalSeconds / (Bytes / (double)(1L << 30)) : 0;

    public static BenchResult CannotRun(string scenario, double? targetGbps, string problem) =>
        new(scenario, 0, TimeSpan.Zero, TimeSpan.Zero, "", targetGbps, problem);
}

/// <summary>Prints results as a table, with the ratio of each to the reference.</summary>
internal static class ResultTable
{
    public static void Print(IReadOnlyList<BenchResult> results, BenchResult? reference, TextWriter output)
    {
        const string Format = "{0,-60} {1,8} {2,11} {3,12} {4,12}  {5}";
        output.WriteLine();
        output.WriteLine(Format, "scenario", "Gbit/s", "CPU s/GiB", "vs ref", "target", "verdict");
        output.WriteLine(new string('-', 120));
        foreach (var result in results)
        {
            string target = result.TargetGbps is { } t ? $">= {t:0.#} Gbit/s" : "-";
            if (!result.Ran)
            {
                output.WriteLine(Format, result.Scenario, "-", "-", "-", target, "NOT RUN: " + result.Problem);
                continue;
            }
            string ratio = reference is { Ran: true, Gbps: > 0 } ? $"{result.Gbps / reference.Gbps:0.00}x" : "-";
            string verdict = result.TargetGbps is { } goal ? (result.Gbps >= goal ? "meets target" : "BELOW TARGET") : result == reference ? "reference" : "for information";
            output.WriteLine(Format, result.Scenario, result.Gbps.ToString("0.000"), result.CpuSecondsPerGiB.ToString("0.00"), ratio, target, verdict);
        }
        output.WriteLine();
        foreach (var result in results.Where(r => r.Ran))
        {
            output.WriteLine($"{result.Scenario}: {result.Bytes / (double)(1L << 20):0} MiB in {result.Elapsed.TotalSeconds:0.00} s, " +
                $"{result.CpuTime.TotalSeconds:0.00} CPU s ({result.CpuSource})");
        }
    }
}
