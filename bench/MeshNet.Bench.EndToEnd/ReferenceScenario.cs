using System.Globalization;
using System.Text.Json;
using MeshNet.TestSupport.Interop;

namespace MeshNet.Bench.EndToEnd;

/// <summary>
/// The reference: iperf3 (Linux TCP) between two network namespaces over two wireguard-go
/// peers joined by a veth pair. CPU is the user + system time of the four processes
/// (both wireguard-go, both iperf3) from <c>/proc/PID/stat</c> and iperf3's own report; kernel
/// work done outside them (softirq on other threads) is not included.
/// </summary>
internal static class ReferenceScenario
{
    public const string Name = "(a) reference: iperf3 over wireguard-go, 2 netns";

    public static async Task<BenchResult> RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var missing = Prerequisites.FindMissing(["ip", "wg", "wireguard-go", "iperf3"]);
        if (missing.Count > 0)
        {
            return BenchResult.CannotRun(Name, null, $"needs {string.Join(", ", missing)} (run as root with wireguard-go, wireguard-tools, iproute2, iperf3 installed)");
        }

        await using var nsA = await NetworkNamespace.CreateAsync(cancellationToken);
        await using var nsB = await NetworkNamespace.CreateAsync(cancellationToken);
        await using var veth = await VethPair.CreateAsync(nsA, nsB, cancellationToken);
        await using var a = await WireGuardGoPeer.StartAsync(nsA, new WireGuardGoPeerOptions { Addresses = ["10.79.0.1/24"] }, cancellationToken);
        await using var b = await WireGuardGoPeer.StartAsync(nsB, new WireGuardGoPeerOptions { Addresses = ["10.79.0.2/24"] }, cancellationToken);
        if (options.TunedReference)
        {
            await WireGuardGoTuning.ApplyAsync(a, cancellationToken);
            await WireGuardGoTuning.ApplyAsync(b, cancellationToken);
        }
        await b.SetPeerAsync(a.PublicKey, a.GetEndpoint(veth.A.IPv4), ["10.79.0.1/32"], cancellationToken: cancellationToken);
        await a.SetPeerAsync(b.PublicKey, b.GetEndpoint(veth.B.IPv4), ["10.79.0.2/32"], cancellationToken: cancellationToken);
        await a.PingAsync(System.Net.IPAddress.Parse("10.79.0.2"), cancellationToken: cancellationToken);

        await using var server = nsB.StartProcess("iperf3", ["-s", "-1", "-p", "5201"]);
        await Poll.UntilAsync(async ct => (await nsB.ExecAsync("ss", ["-Htln", "sport = :5201"], ShellOptions.Unchecked, ct)).StandardOutput.Contains("5201", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "iperf3 to listen", cancellationToken);

        var wireGuardBefore = ProcessCpu.Read(a.ProcessId) + ProcessCpu.Read(b.ProcessId);
        var seconds = ((int)Math.Ceiling(options.Duration.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        // iperf3 takes one end condition: time (the byte cap of the stack scenarios does not apply).
        var client = await nsA.ExecAsync("iperf3", ["-c", "10.79.0.2", "-p", "5201", "-J", "-t", seconds],
            ShellOptions.Default with { Timeout = options.Duration + TimeSpan.FromSeconds(60) }, cancellationToken);
        var wireGuardCpu = ProcessCpu.Read(a.ProcessId) + ProcessCpu.Read(b.ProcessId) - wireGuardBefore;

        using var json = JsonDocument.Parse(client.StandardOutput);
        var end = json.RootElement.GetProperty("end");
        var received = end.GetProperty("sum_received");
        long bytes = received.GetProperty("bytes").GetInt64();
        var elapsed = TimeSpan.FromSeconds(received.GetProperty("seconds").GetDouble());
        var cpu = end.GetProperty("cpu_utilization_percent");
        var iperfCpu = TimeSpan.FromSeconds((cpu.GetProperty("host_total").GetDouble() + cpu.GetProperty("remote_total").GetDouble()) / 100 * elapsed.TotalSeconds);

        return new BenchResult(Name + (options.TunedReference ? " (tuned)" : ""), bytes, elapsed, wireGuardCpu + iperfCpu,
            $"wireguard-go x2 {wireGuardCpu.TotalSeconds:0.00} s + iperf3 x2 {iperfCpu.TotalSeconds:0.00} s", null);
    }
}

/// <summary>CPU time of another process from <c>/proc/PID/stat</c>.</summary>
internal static class ProcessCpu
{
    private static readonly Lazy<double> s_ticksPerSecond = new(() =>
        double.Parse(Shell.Run("getconf", ["CLK_TCK"]).StandardOutput.Trim(), CultureInfo.InvariantCulture));

    /// <summary>User + system time of <paramref name="pid"/> so far.</summary>
    public static TimeSpan Read(int pid)
    {
        // Fields after the command (which is in parentheses and may contain spaces): state is
        // field 3, utime 14 and stime 15 (1-based), i.e. indexes 11 and 12 after the ')'.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / s_ticksPerSecond.Value);
    }
}
