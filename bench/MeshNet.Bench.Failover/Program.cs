using System.Globalization;
using MeshNet.Bench.Failover;
using MeshNet.TestSupport;
using static MeshNet.Bench.BenchStatistics;

FailoverOptions options;
try
{
    options = FailoverOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(FailoverOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(FailoverOptions.Usage);
    return 0;
}
if (PostgresCluster.FindMissing() is { Count: > 0 } missing)
{
    Console.Error.WriteLine($"PostgreSQL is missing ({string.Join(", ", missing)}): {PostgresCluster.InstallHint}");
    return 2;
}

MeshNet.Bench.BenchConsole.PrintMachine("MeshNet sharded coordination failover");
Console.WriteLine($"{options.Nodes} nodes in {options.Tailnets} tailnets over {options.Servers} servers (child processes) on one PostgreSQL database; " +
    $"{options.Moves} planned migrations, {options.Kills} kill -9");
using var cancel = MeshNet.Bench.BenchConsole.CancelOnCtrlC();

FailoverReport report;
try
{
    report = await FailoverScenario.RunAsync(options, Console.WriteLine, cancel.Token);
}
catch (Exception e) when (!cancel.IsCancellationRequested)
{
    Console.Error.WriteLine($"the run failed: {e.GetType().Name}: {e.Message}");
    return 1;
}

const double MoveTargetMs = 250;
double failoverTargetMs = (report.Ttl + TimeSpan.FromSeconds(2)).TotalMilliseconds;
var lastResumed = report.Kills.Select(kill => kill.LastResumedMs).ToList();
double refP50 = Percentile(report.Reference, 50), refP99 = Percentile(report.Reference, 99);
double gapP50 = Percentile(report.MoveGaps, 50), gapP99 = Percentile(report.MoveGaps, 99);

Console.WriteLine();
Console.WriteLine(Invariant($"joined in {report.JoinSeconds:0.0} s; lease TTL {report.Ttl.TotalSeconds:0.#} s"));
Console.WriteLine("                                       p50          p99          max      n");
Row("reference: policy save -> last node", report.Reference);
Row("planned migration: node control gap", report.MoveGaps);
Console.WriteLine(Invariant($"  vs reference                 {gapP50 / refP50,10:0.00}x  {gapP99 / refP99,10:0.00}x"));
Row("planned migration: writes frozen", report.MoveFrozen);
Row("kill -9 -> last node resumed", lastResumed);
Row("kill -9 -> each node resumed", [.. report.Kills.SelectMany(kill => kill.NodeResumedMs)]);
Console.WriteLine(Invariant($"  vs TTL                       {Percentile(lastResumed, 50) / report.Ttl.TotalMilliseconds,10:0.00}x  {Percentile(lastResumed, 99) / report.Ttl.TotalMilliseconds,10:0.00}x"));
if (report.Renewals is { } renewals)
{
    Console.WriteLine(Invariant($"PostgreSQL while only leases are kept ({renewals.Seconds:0} s): {renewals.LeaseRowsPerSecond:0.0} lease renewals/s, ") +
        Invariant($"{renewals.HeartbeatsPerSecond:0.0} heartbeats/s (one statement each), {renewals.CommitsPerSecond:0.0} commits/s, {renewals.WalBytesPerSecond / 1024:0.0} KiB WAL/s"));
}
Console.WriteLine();
Console.WriteLine("kills:");
foreach (var kill in report.Kills)
{
    Console.WriteLine(Invariant($"  {kill.Server}: {kill.Tailnets} tailnets, {kill.Nodes} nodes; last resumed after {kill.LastResumedMs:0} ms, p50 {Percentile(kill.NodeResumedMs, 50):0} ms; ") +
        Invariant($"last try to resumed p50 {Percentile(kill.LastTryMs, 50):0} ms, max {kill.LastTryMs.Max():0} ms"));
}
Console.WriteLine("incidents (blast radius = affected / all):");
foreach (var incident in report.Incidents)
{
    Console.WriteLine(Invariant($"  {incident.Cause,-13} {incident.Subject,-6} tailnets {incident.TailnetsAffected}/{incident.TailnetsTotal}, nodes {incident.NodesAffected}/{incident.NodesTotal}, ") +
        Invariant($"{incident.GapNodeSeconds:0.0} node-s of control gap, detect {incident.MaxTimeToDetect?.ToTimeSpan().TotalMilliseconds ?? 0:0} ms, ") +
        Invariant($"mitigate {(incident.TimeToMitigate is { } mitigate ? Ms(mitigate.ToTimeSpan().TotalMilliseconds) : "open")}, severity {incident.Severity}"));
}

Console.WriteLine($"servers' logs: {report.LogDirectory}");

bool moveMet = gapP99 < MoveTargetMs;
bool failoverMet = Percentile(lastResumed, 99) <= failoverTargetMs;
Console.WriteLine();
Console.WriteLine(Invariant($"target: planned-migration gap p99 < {MoveTargetMs:0} ms: {(moveMet ? "met" : "MISSED")} ({gapP99:0.0} ms)"));
Console.WriteLine(Invariant($"target: kill -> last node resumed p99 <= TTL + 2 s = {failoverTargetMs:0} ms: {(failoverMet ? "met" : "MISSED")} ({Percentile(lastResumed, 99):0} ms)"));
return moveMet && failoverMet ? 0 : 1;

static void Row(string what, IReadOnlyList<double> values) =>
    Console.WriteLine(Invariant($"{what,-36} {Ms(Percentile(values, 50)),12} {Ms(Percentile(values, 99)),12} {Ms(values.Count == 0 ? double.NaN : values.Max()),12} {values.Count,6}"));

static string Ms(double ms) => double.IsNaN(ms) ? "n/a" : Invariant($"{ms:0.0} ms");

static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
