using System.Globalization;
using MeshNet.Bench.ControlFanout;
using static MeshNet.Bench.BenchStatistics;

if (args.Length == 1 && args[0] == ServeMode.Argument)
{
    return await ServeMode.RunAsync();
}

FanoutOptions options;
try
{
    options = FanoutOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(FanoutOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(FanoutOptions.Usage);
    return 0;
}

MeshNet.Bench.BenchConsole.PrintMachine("MeshNet control fan-out");
Console.WriteLine($"{options.Servers} tag:server nodes, the rest tag:client; {options.Connections} HTTP/2 connections; {options.Saves} rounds per measurement; server in a child process");

using var cancel = MeshNet.Bench.BenchConsole.CancelOnCtrlC();

const double TargetNodes = 1_000, TargetP99Ms = 1_000;
int exitCode = 0;
var results = new List<FanoutResult>();
foreach (int nodes in options.NodeCounts)
{
    Console.WriteLine($"running N = {nodes} ...");
    try
    {
        var result = await FanoutScenario.RunAsync(nodes, options, cancel.Token);
        results.Add(result);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  registered {result.RegistrationsPerSecond:0}/s, streams up in {result.ConnectSeconds:0.0} s, a client sees {result.ClientPeers} peers, a server {result.ServerPeers}, {result.Reconnects} reconnects"));
    }
    catch (Exception e) when (!cancel.IsCancellationRequested)
    {
        Console.Error.WriteLine($"  N = {nodes} failed: {e.GetType().Name}: {e.Message}");
        exitCode = 1;
    }
}

Console.WriteLine();
Console.WriteLine("                       reference (endpoint patch)    policy save -> last node applied        per node (policy)      bytes/   server memory per node");
Console.WriteLine("     N   affected      last p50     last p99          last p50     last p99   vs ref        p50       p99       delta    managed    working set");
foreach (var r in results)
{
    double refP50 = Percentile(FanoutResult.LastTimes(r.Reference), 50);
    double refP99 = Percentile(FanoutResult.LastTimes(r.Reference), 99);
    double polP50 = Percentile(FanoutResult.LastTimes(r.Policy), 50);
    double polP99 = Percentile(FanoutResult.LastTimes(r.Policy), 99);
    var perNode = r.Policy.SelectMany(w => w.NodeMs).ToArray();
    double bytes = r.Policy.Count == 0 ? 0 : r.Policy.Average(w => w.BytesPerDelta);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{r.Nodes,6} {r.NodesAffected,10}   {Ms(refP50),11} {Ms(refP99),12}      {Ms(polP50),12} {Ms(polP99),12}  {polP50 / refP50,6:0.0}x  {Ms(Percentile(perNode, 50)),9} {Ms(Percentile(perNode, 99)),9}   {bytes,7:0}   {Kib(r.ManagedBytesPerNode),8} {Kib(r.WorkingSetBytesPerNode),12}"));
    if (r.Nodes == TargetNodes)
    {
        bool met = polP99 < TargetP99Ms;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  target at {TargetNodes:0} nodes: policy p99 < {TargetP99Ms:0} ms: {(met ? "met" : "MISSED")} ({Ms(polP99)})"));
        if (!met)
        {
            exitCode = 1;
        }
    }
}
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"(save RPC p50: {string.Join(", ", results.Select(r => $"N={r.Nodes} {Ms(Percentile(r.SaveRpcMs, 50))}"))})"));
return exitCode;

static string Ms(double ms) => double.IsNaN(ms) ? "n/a" : double.IsPositiveInfinity(ms) ? "incomplete" : string.Create(CultureInfo.InvariantCulture, $"{ms:0.0} ms");

static string Kib(double bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:0.0} KiB");
