using System.Diagnostics;

namespace MeshNet.TestSupport;

/// <summary>
/// An iptables rule in the OUTPUT chain on <c>lo</c> of the root network namespace that drops
/// (or rejects) one user's TCP packets to one local port: it cuts a process run under its own uid
/// (<see cref="SampleProcess.StartAssembly"/>) off from a local server, e.g. one coordination server
/// from PostgreSQL, and touches nothing else. Each rule carries a comment unique to it, and is
/// deleted on disposal (also after a failed test). Needs root.
/// </summary>
public sealed class LoopbackFirewallRule : IAsyncDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    private readonly string[] _specification;
    private int _disposed;

    private LoopbackFirewallRule(string[] specification) => _specification = specification;

    /// <summary>Why such rules cannot be added here (not root, no iptables), or null.</summary>
    public static string? MissingPrerequisite()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
        {
            return "root privileges";
        }
        return Environment.GetEnvironmentVariable("PATH")?.Split(':').Any(dir => File.Exists(Path.Combine(dir, "iptables"))) == true
            ? null
            : "command `iptables`";
    }

    /// <summary>Drops (or with <paramref name="reject"/>, resets) every TCP packet user <paramref name="uid"/> sends to 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<LoopbackFirewallRule> CutAsync(int uid, int port, bool reject = false)
    {
        string[] specification =
        [
            "OUTPUT", "-o", "lo", "-p", "tcp", "-d", "127.0.0.1", "--dport", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", "owner", "--uid-owner", uid.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", "comment", "--comment", $"meshnet-test-{Environment.ProcessId}-{Guid.NewGuid():N}",
            "-j", reject ? "REJECT" : "DROP", .. reject ? new[] { "--reject-with", "tcp-reset" } : [],
        ];
        await RunAsync(["-I", .. specification]).ConfigureAwait(false);
        return new LoopbackFirewallRule(specification);
    }

    /// <summary>Deletes the rule. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await RunAsync(["-D", .. _specification]).ConfigureAwait(false);
        }
    }

    private static async Task RunAsync(string[] arguments)
    {
        var info = new ProcessStartInfo("iptables") { RedirectStandardError = true, RedirectStandardOutput = true };
        // -w: wait for the xtables lock other runs may hold.
        foreach (var argument in (string[])["-w", "10", .. arguments])
        {
            info.ArgumentList.Add(argument);
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException("iptables did not start");
        using var timeout = new CancellationTokenSource(CommandTimeout);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"iptables {string.Join(' ', arguments)} failed ({process.ExitCode}): {(await error.ConfigureAwait(false)).Trim()}");
        }
    }
}
