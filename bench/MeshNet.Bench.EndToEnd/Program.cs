using MeshNet.Bench.EndToEnd;

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

MeshNet.Bench.BenchConsole.PrintMachine("MeshNet end-to-end TCP throughput");
Console.WriteLine($"each run: {options.Duration.TotalSeconds:0.#} s, stack runs capped at {options.Bytes >> 20} MiB; tunnel MTU {options.Mtu}, in-memory link MTU {options.MemoryMtu}");

using var cancel = MeshNet.Bench.BenchConsole.CancelOnCtrlC();

var results = new List<BenchResult>();
BenchResult? reference = null;
int exitCode = 0;
foreach (var scenario in options.Scenarios)
{
    var (name, target, run) = scenario switch
    {
        "reference" => (ReferenceScenario.Name, (double?)null, (Func<BenchOptions, CancellationToken, Task<BenchResult>>)ReferenceScenario.RunAsync),
        "memory" => (StackScenarios.MemoryName, StackScenarios.MemoryTargetGbps,
            (o, ct) => StackScenarios.RunMemoryAsync(StackScenarios.MemoryName, o.MemoryMtu, o, ct)),
        "memory-tunnel" => (StackScenarios.MemoryTunnelName, null,
            (o, ct) => StackScenarios.RunMemoryAsync(StackScenarios.MemoryTunnelName, o.Mtu, o, ct)),
        _ => (StackScenarios.WireGuardName, StackScenarios.WireGuardTargetGbps, StackScenarios.RunWireGuardAsync),
    };
    Console.WriteLine($"running {name} ...");
    BenchResult result;
    // A stack that stalls must not hang the benchmark: each scenario gets its run time plus 90 s.
    using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token);
    var allowed = options.Duration + TimeSpan.FromSeconds(90);
    limit.CancelAfter(allowed);
    try
    {
        result = await run(options, limit.Token).WaitAsync(allowed + TimeSpan.FromSeconds(30), cancel.Token);
    }
    catch (Exception e) when (e is OperationCanceledException or TimeoutException && !cancel.IsCancellationRequested)
    {
        result = BenchResult.CannotRun(name, target, $"timed out after {allowed.TotalSeconds:0} s");
        exitCode = 1;
    }
    catch (NotImplementedException e)
    {
        var where = e.TargetSite is { } site ? $"{site.DeclaringType?.Name}.{site.Name}" : "the stack";
        result = BenchResult.CannotRun(name, target, $"the TCP/IP stack is not implemented yet ({where} threw NotImplementedException)");
    }
    catch (OperationCanceledException) when (cancel.IsCancellationRequested)
    {
        result = BenchResult.CannotRun(name, target, "cancelled");
    }
    catch (Exception e)
    {
        result = BenchResult.CannotRun(name, target, $"failed: {e.GetType().Name}: {e.Message}");
        Console.Error.WriteLine(e);
        exitCode = 1;
    }
    if (scenario == "reference")
    {
        reference = result;
    }
    results.Add(result);
}

ResultTable.Print(results, reference, Console.Out);
return exitCode;
