using System.Globalization;
using System.Net;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// A Linux network namespace named <c>mnt{pid}-{n}</c> (see <see cref="RunId"/>) with
/// <c>lo</c> up. Commands run inside it with <c>ip netns exec</c>. Disposal kills every process
/// in it (<c>ip netns pids</c>: SIGTERM, then SIGKILL) and deletes it, which also destroys the
/// interfaces inside and their veth peers. Disposal is idempotent; use <c>await using</c> so it
/// happens when a test fails.
/// </summary>
public sealed class NetworkNamespace : IAsyncDisposable
{
    private int _disposed;

    private NetworkNamespace(string name) => Name = name;

    /// <summary>The namespace name, as listed by <c>ip netns list</c>.</summary>
    public string Name { get; }

    /// <summary>Creates a namespace (after removing leftovers of crashed runs, once per process).</summary>
    /// <exception cref="InteropPrerequisiteException">Not root, or <c>ip</c> / network namespaces unavailable.</exception>
    public static async Task<NetworkNamespace> CreateAsync(CancellationToken cancellationToken = default)
    {
        Prerequisites.Require("ip");
        await LeftoverSweeper.EnsureSweptAsync(cancellationToken).ConfigureAwait(false);
        var ns = new NetworkNamespace(RunId.NextName(RunId.NamespaceKind));
        await Shell.RunAsync("ip", ["netns", "add", ns.Name], cancellationToken).ConfigureAwait(false);
        try
        {
            await ns.IpAsync(["link", "set", "dev", "lo", "up"], cancellationToken: cancellationToken).ConfigureAwait(false);
            return ns;
        }
        catch
        {
            await ns.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs <paramref name="fileName"/> inside the namespace (<c>ip netns exec</c>) to completion.</summary>
    public Task<ShellResult> ExecAsync(string fileName, IReadOnlyList<string> arguments, ShellOptions? options = null, CancellationToken cancellationToken = default)
        => Shell.RunAsync("ip", ["netns", "exec", Name, fileName, .. arguments], options, cancellationToken);

    /// <summary>Runs <c>ip -n {Name} ...</c>.</summary>
    public Task<ShellResult> IpAsync(IReadOnlyList<string> arguments, ShellOptions? options = null, CancellationToken cancellationToken = default)
        => Shell.RunAsync("ip", ["-n", Name, .. arguments], options, cancellationToken);

    /// <summary>Starts a long-running command inside the namespace; the caller disposes it (and disposing the namespace kills it anyway).</summary>
    public BackgroundProcess StartProcess(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
        => BackgroundProcess.Start("ip", ["netns", "exec", Name, fileName, .. arguments], environment);

    /// <summary>Sends one ping to <paramref name="address"/>; true if a reply came within <paramref name="wait"/> (default 1 s).</summary>
    public async Task<bool> TryPingAsync(IPAddress address, TimeSpan? wait = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        Prerequisites.Require("ip", "ping");
        var seconds = Math.Max(1, (int)Math.Ceiling((wait ?? TimeSpan.FromSeconds(1)).TotalSeconds));
        var result = await ExecAsync(
            "ping",
            ["-n", "-c", "1", "-W", seconds.ToString(CultureInfo.InvariantCulture), address.ToString()],
            ShellOptions.Unchecked with { Timeout = TimeSpan.FromSeconds(seconds + 10) },
            cancellationToken).ConfigureAwait(false);
        return result.Succeeded;
    }

    /// <summary>
    /// Pings <paramref name="address"/> until one reply arrives (a first packet may be spent on a
    /// WireGuard handshake or neighbour discovery), for at most <paramref name="timeout"/> (default 15 s).
    /// </summary>
    /// <exception cref="TimeoutException">No reply; the message names the namespace and address.</exception>
    public Task PingAsync(IPAddress address, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Poll.UntilAsync(ct => TryPingAsync(address, cancellationToken: ct), timeout ?? TimeSpan.FromSeconds(15), $"a ping reply from {address} in namespace {Name}", cancellationToken);

    /// <summary>The pids of the processes in the namespace.</summary>
    public Task<IReadOnlyList<int>> GetPidsAsync(CancellationToken cancellationToken = default) => GetPidsAsync(Name, cancellationToken);

    /// <summary>True while the namespace is listed by <c>ip netns list</c>.</summary>
    public async Task<bool> ExistsAsync(CancellationToken cancellationToken = default)
        => (await ListAsync(cancellationToken).ConfigureAwait(false)).Contains(Name);

    /// <summary>Kills everything inside and deletes the namespace. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await DeleteAsync(Name, TimeSpan.FromSeconds(3)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>The names in <c>ip netns list</c>.</summary>
    internal static async Task<IReadOnlyList<string>> ListAsync(CancellationToken cancellationToken = default)
    {
        // Lines look like "mnt123-1 (id: 4)" or just "mnt123-1".
        var result = await Shell.RunAsync("ip", ["netns", "list"], cancellationToken).ConfigureAwait(false);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(' ', 2)[0])
            .ToList();
    }

    /// <summary>Kills the processes in namespace <paramref name="name"/> (SIGTERM, after <paramref name="grace"/> SIGKILL) and deletes it; a missing namespace is fine.</summary>
    internal static async Task DeleteAsync(string name, TimeSpan grace)
    {
        await KillAllAsync(name, ProcessSignals.Terminate).ConfigureAwait(false);
        try
        {
            await Poll.UntilAsync(async ct => (await GetPidsAsync(name, ct).ConfigureAwait(false)).Count == 0, grace, $"processes in {name} to exit").ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await KillAllAsync(name, ProcessSignals.Kill).ConfigureAwait(false);
            await Poll.UntilAsync(async ct => (await GetPidsAsync(name, ct).ConfigureAwait(false)).Count == 0, TimeSpan.FromSeconds(10), $"processes in {name} to exit after SIGKILL").ConfigureAwait(false);
        }

        var deleted = await Shell.RunAsync("ip", ["netns", "delete", name], ShellOptions.Unchecked).ConfigureAwait(false);
        if (!deleted.Succeeded && (await ListAsync().ConfigureAwait(false)).Contains(name))
        {
            throw new ShellCommandException(deleted.CommandLine, deleted.ExitCode, deleted.StandardOutput, deleted.StandardError, $"exited with code {deleted.ExitCode}; namespace {name} is left behind");
        }
    }

    private static async Task KillAllAsync(string name, int signal)
    {
        foreach (var pid in await GetPidsAsync(name, CancellationToken.None).ConfigureAwait(false))
        {
            ProcessSignals.Send(pid, signal);
        }
    }

    private static async Task<IReadOnlyList<int>> GetPidsAsync(string name, CancellationToken cancellationToken)
    {
        // A namespace that no longer exists has no processes.
        var result = await Shell.RunAsync("ip", ["netns", "pids", name], ShellOptions.Unchecked, cancellationToken).ConfigureAwait(false);
        return result.Succeeded
            ? result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(pid => int.Parse(pid, NumberStyles.None, CultureInfo.InvariantCulture))
                .ToList()
            : [];
    }
}
