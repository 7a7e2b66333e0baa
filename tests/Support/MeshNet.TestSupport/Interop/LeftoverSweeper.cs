using System.Globalization;
using System.Text;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// Removes what crashed runs left behind: namespaces (<c>mnt</c>), root-namespace links
/// (<c>mnv</c> veths, <c>mnw</c> wireguard-go interfaces), wireguard-go processes and UAPI
/// sockets (<c>mnw</c>) and key directories (<c>mnk</c>) whose owner pid (see
/// <see cref="RunId"/>) is dead. Resources of live processes, i.e. of concurrent runs, are
/// never touched.
/// </summary>
/// <remarks>
/// Runs once per process, before the first resource is created (<see cref="EnsureSweptAsync"/>),
/// so resources named with this process's own pid are leftovers of an earlier process that had
/// the same pid, and are removed too. Owner liveness is judged in this pid namespace. Each item
/// is best effort: a sweep never fails a test.
/// </remarks>
public static class LeftoverSweeper
{
    /// <summary>Where wireguard-go puts its UAPI sockets (shared by all network namespaces).</summary>
    public const string WireGuardSocketDirectory = "/var/run/wireguard";

    // The once-per-process sweep; a Lazy of a never-faulting task is immutable once created.
    private static readonly Lazy<Task> s_sweep = new(() => Task.Run(InitialSweepAsync));

    /// <summary>Waits for this process's one sweep (started by the first caller).</summary>
    public static Task EnsureSweptAsync(CancellationToken cancellationToken = default) => s_sweep.Value.WaitAsync(cancellationToken);

    /// <summary>
    /// Sweeps now, leaving this process's resources alone; returns a description of each item
    /// removed. Never throws for a single item.
    /// </summary>
    public static Task<IReadOnlyList<string>> SweepAsync(CancellationToken cancellationToken = default)
        => SweepAsync(includeOwnProcess: false, cancellationToken);

    /// <summary>
    /// True when <paramref name="name"/> is a harness name of <paramref name="kind"/> whose owner
    /// is dead, or is this process when <paramref name="includeOwnProcess"/> (only before its first resource).
    /// </summary>
    public static bool IsStale(string name, char kind, bool includeOwnProcess = false)
        => RunId.TryParseOwner(name, out var actualKind, out var pid) && actualKind == kind
            && (pid == RunId.ProcessId ? includeOwnProcess : !ProcessSignals.IsAlive(pid));

    private static async Task InitialSweepAsync()
    {
        try
        {
            await SweepAsync(includeOwnProcess: true, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ShellCommandException or IOException or UnauthorizedAccessException)
        {
            // Best effort: a broken `ip` shows up again, with its message, when the caller creates something.
        }
    }

    private static async Task<IReadOnlyList<string>> SweepAsync(bool includeOwnProcess, CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        bool Stale(string name, char kind) => IsStale(name, kind, includeOwnProcess);
        KillStaleWireGuardProcesses(Stale, removed);
        await SweepNamespacesAsync(Stale, removed, cancellationToken).ConfigureAwait(false);
        await SweepRootLinksAsync(Stale, removed, cancellationToken).ConfigureAwait(false);
        SweepFiles(Stale, WireGuardSocketDirectory, RunId.WireGuardKind, directories: false, removed);
        SweepFiles(Stale, Path.GetTempPath(), RunId.TempDirectoryKind, directories: true, removed);
        return removed;
    }

    private static void KillStaleWireGuardProcesses(Func<string, char, bool> isStale, List<string> removed)
    {
        foreach (var directory in SafeEnumerate("/proc", directories: true))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var argv = File.ReadAllText(Path.Combine(directory, "cmdline"), Encoding.UTF8).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                if (argv.Length > 1 && Path.GetFileName(argv[0]) == "wireguard-go" && argv.Skip(1).Any(a => isStale(a, RunId.WireGuardKind)))
                {
                    ProcessSignals.Send(pid, ProcessSignals.Kill);
                    removed.Add($"process {pid} ({string.Join(' ', argv)})");
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process exited while we looked.
            }
        }
    }

    private static async Task SweepNamespacesAsync(Func<string, char, bool> isStale, List<string> removed, CancellationToken cancellationToken)
    {
        foreach (var name in await NetworkNamespace.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (isStale(name, RunId.NamespaceKind))
            {
                try
                {
                    await NetworkNamespace.DeleteAsync(name, TimeSpan.Zero).ConfigureAwait(false);
                    removed.Add($"namespace {name}");
                }
                catch (Exception e) when (e is ShellCommandException or TimeoutException)
                {
                    // A concurrent run may be sweeping the same leftover.
                }
            }
        }
    }

    private static async Task SweepRootLinksAsync(Func<string, char, bool> isStale, List<string> removed, CancellationToken cancellationToken)
    {
        // "12: mnv123-4a@if11: <BROADCAST,..." -> "mnv123-4a"
        var links = await Shell.RunAsync("ip", ["-o", "link", "show"], cancellationToken).ConfigureAwait(false);
        foreach (var line in links.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(':', 3);
            if (fields.Length < 3)
            {
                continue;
            }

            var name = fields[1].Trim().Split('@')[0];
            if (isStale(name, RunId.VethKind) || isStale(name, RunId.WireGuardKind))
            {
                var deleted = await Shell.RunAsync("ip", ["link", "delete", "dev", name], ShellOptions.Unchecked, cancellationToken).ConfigureAwait(false);
                if (deleted.Succeeded)
                {
                    removed.Add($"link {name}");
                }
            }
        }
    }

    private static void SweepFiles(Func<string, char, bool> isStale, string directory, char kind, bool directories, List<string> removed)
    {
        foreach (var path in SafeEnumerate(directory, directories))
        {
            if (!isStale(Path.GetFileName(path), kind))
            {
                continue;
            }

            try
            {
                if (directories)
                {
                    Directory.Delete(path, recursive: true);
                }
                else
                {
                    File.Delete(path);
                }

                removed.Add(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Removed concurrently, or not ours to remove after all.
            }
        }
    }

    private static IEnumerable<string> SafeEnumerate(string directory, bool directories)
    {
        try
        {
            return directories ? Directory.GetDirectories(directory) : Directory.GetFiles(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
