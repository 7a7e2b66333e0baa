namespace MeshNet.TestSupport.Interop;

/// <summary>
/// What interop tests need from the machine: Linux, root, usable network namespaces
/// (<c>ip netns add</c> is actually tried once per process), <c>/dev/net/tun</c> for
/// wireguard-go, and commands on PATH (<see cref="DefaultCommands"/> plus any a test names).
/// </summary>
/// <remarks>
/// <para>Policy. On a developer machine that lacks something, interop tests are skipped with
/// the reason (<c>InteropFact</c> in MeshNet.Interop.Tests). When the environment variable <c>CI</c> is
/// <c>true</c> (set by <c>.ci/run</c>), nothing is skipped: a missing prerequisite must not let
/// CI go green silently, so the test runs and <see cref="Require"/> (called by every fixture:
/// <see cref="NetworkNamespace.CreateAsync"/>, <see cref="WireGuardGoPeer.StartAsync"/>, ...)
/// fails it with a message naming what is missing. <c>./test.sh</c> installs the packages when
/// it runs as root.</para>
/// <para>The namespace probe is computed once per process (<see cref="Lazy{T}"/>): it is a fact
/// about the machine, not mutable state.</para>
/// </remarks>
public static class Prerequisites
{
    /// <summary>Commands every interop test needs.</summary>
    public static IReadOnlyList<string> DefaultCommands { get; } = ["ip", "wg", "wireguard-go", "ping"];

    /// <summary>How to get the prerequisites, for messages.</summary>
    public const string InstallHint = "run them as root with the packages of SYSTEM_PACKAGES in test.sh installed (./test.sh installs them itself when run as root)";

    private static readonly Lazy<string?> s_namespaceProblem = new(ProbeNamespaces);

    /// <summary>True when the environment variable <c>CI</c> is <c>true</c>: prerequisites are then never grounds to skip.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Everything missing to run <paramref name="commands"/> as root in network namespaces; empty when all is there.</summary>
    public static IReadOnlyList<string> FindMissing(IEnumerable<string> commands)
    {
        ArgumentNullException.ThrowIfNull(commands);
        commands = commands.Distinct(StringComparer.Ordinal).ToList();
        var missing = new List<string>();
        if (!OperatingSystem.IsLinux())
        {
            missing.Add("Linux (network namespaces)");
            return missing;
        }

        if (!Environment.IsPrivilegedProcess)
        {
            missing.Add("root privileges");
        }

        missing.AddRange(commands.Where(c => FindOnPath(c) is null).Select(c => $"command `{c}`"));
        if (commands.Contains("wireguard-go") && !File.Exists("/dev/net/tun"))
        {
            missing.Add("/dev/net/tun");
        }

        if (missing.Count == 0 && s_namespaceProblem.Value is { } problem)
        {
            missing.Add(problem);
        }

        return missing;
    }

    /// <summary>The reason to skip a test needing <paramref name="additionalCommands"/>, or null to run it (always null when <see cref="IsCi"/>).</summary>
    public static string? SkipReason(IEnumerable<string> additionalCommands)
    {
        if (IsCi)
        {
            return null;
        }

        var missing = FindMissing(DefaultCommands.Concat(additionalCommands));
        return missing.Count == 0
            ? null
            : $"Interop prerequisites missing: {string.Join(", ", missing)}. To run these tests, {InstallHint}. With CI=true they fail instead of skipping.";
    }

    /// <summary>
    /// Throws <see cref="InteropPrerequisiteException"/> naming everything missing to run
    /// <paramref name="commands"/> (exactly these, not the defaults) as root in network
    /// namespaces. Call at the start of every fixture.
    /// </summary>
    public static void Require(params string[] commands)
    {
        var missing = FindMissing(commands);
        if (missing.Count > 0)
        {
            throw new InteropPrerequisiteException(
                $"Interop test prerequisites missing: {string.Join(", ", missing)}. To run these tests, {InstallHint}."
                + (IsCi ? " (CI=true: interop tests are not skipped on CI.)" : ""));
        }
    }

    /// <summary>The full path of <paramref name="command"/> on PATH, or null.</summary>
    public static string? FindOnPath(string command)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        if (command.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(command) ? command : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, command))
            .FirstOrDefault(candidate => File.Exists(candidate)
                && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0));
    }

    private static string? ProbeNamespaces()
    {
        if (!Environment.IsPrivilegedProcess || FindOnPath("ip") is null)
        {
            return null; // Reported separately.
        }

        // Named like every namespace of this process, so a crash here leaves nothing the sweep misses.
        var probe = RunId.Prefix(RunId.NamespaceKind) + "probe";
        try
        {
            var added = Shell.Run("ip", ["netns", "add", probe], ShellOptions.Unchecked);
            if (!added.Succeeded)
            {
                return $"usable network namespaces (`ip netns add` failed: {added.StandardError.Trim()})";
            }

            Shell.Run("ip", ["netns", "delete", probe], ShellOptions.Unchecked);
            return null;
        }
        catch (ShellCommandException e)
        {
            return $"usable network namespaces ({e.Message})";
        }
    }
}
