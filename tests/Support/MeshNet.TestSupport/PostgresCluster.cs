using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace MeshNet.TestSupport;

/// <summary>
/// A throwaway PostgreSQL cluster for tests: <c>initdb</c> in a temporary directory, started with
/// <c>pg_ctl</c> on a free TCP port of 127.0.0.1 (clients connect over TCP loopback as user
/// <c>postgres</c>, trust authentication), with durability off (<c>fsync=off</c>). Run as the
/// <c>postgres</c> OS user when the test process is root (PostgreSQL refuses to run as root).
/// Disposing it stops it and deletes its directory, even after failures.
/// </summary>
/// <remarks>
/// <para>Prerequisite policy (as the interop tests'): on a machine without PostgreSQL the tests
/// that need it are skipped with <see cref="SkipReason"/> (<see cref="PostgresFactAttribute"/>),
/// unless the environment variable <c>CI</c> is <c>true</c>: then nothing is skipped, and
/// <see cref="StartAsync"/> fails naming what is missing and how to install it.</para>
/// <para>Thread-safe: start, stop and restart are serialized; <see cref="CreateDatabaseAsync"/>
/// may run concurrently with other calls.</para>
/// </remarks>
public sealed class PostgresCluster : IAsyncDisposable
{
    /// <summary>How to get PostgreSQL, for messages.</summary>
    public const string InstallHint =
        "install PostgreSQL's server (as root: `apt-get install postgresql`; ./test.sh installs it itself when run as root)";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);
    private static readonly Lazy<IReadOnlyList<string>> s_missing = new(FindMissingCore);

    private readonly string _root;
    private readonly string _binDirectory;
    private readonly bool _runAsPostgres;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;

    private PostgresCluster(string root, string binDirectory, bool runAsPostgres)
    {
        _root = root;
        _binDirectory = binDirectory;
        _runAsPostgres = runAsPostgres;
    }

    /// <summary>The TCP port the server listens on (127.0.0.1).</summary>
    public int Port { get; private set; }

    /// <summary>The cluster's data directory.</summary>
    public string DataDirectory => Path.Combine(_root, "data");

    /// <summary>The server's log file.</summary>
    public string LogPath => Path.Combine(_root, "postgres.log");

    /// <summary>A connection string to the <c>postgres</c> database (for administration).</summary>
    public string AdminConnectionString => ConnectionString("postgres");

    /// <summary>True when the environment variable <c>CI</c> is <c>true</c>: a missing PostgreSQL is then never grounds to skip.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>What is missing to run a cluster here (computed once per process); empty when nothing is.</summary>
    public static IReadOnlyList<string> FindMissing() => s_missing.Value;

    /// <summary>The reason to skip a test that needs PostgreSQL, or null to run it (always null when <see cref="IsCi"/>).</summary>
    public static string? SkipReason()
    {
        if (IsCi)
        {
            return null;
        }
        var missing = FindMissing();
        return missing.Count == 0
            ? null
            : $"PostgreSQL prerequisites missing: {string.Join(", ", missing)}. To run these tests, {InstallHint}. With CI=true they fail instead of skipping.";
    }

    /// <summary>
    /// The directory of <c>initdb</c>, <c>pg_ctl</c> and <c>postgres</c>: the highest version under
    /// <c>/usr/lib/postgresql/*/bin</c> (Debian keeps them off PATH), else the directory on PATH
    /// that has <c>initdb</c>; null when neither.
    /// </summary>
    public static string? FindBinDirectory()
    {
        const string debian = "/usr/lib/postgresql";
        if (Directory.Exists(debian))
        {
            var best = Directory.EnumerateDirectories(debian)
                .Select(directory => (Directory: directory, Version: ParseVersion(Path.GetFileName(directory))))
                .Where(candidate => candidate.Version is not null && HasBinaries(Path.Combine(candidate.Directory, "bin")))
                .OrderByDescending(candidate => candidate.Version)
                .FirstOrDefault();
            if (best.Directory is not null)
            {
                return Path.Combine(best.Directory, "bin");
            }
        }
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(HasBinaries);

        static Version? ParseVersion(string name) =>
            Version.TryParse(name.Contains('.', StringComparison.Ordinal) ? name : name + ".0", out var version) ? version : null;

        static bool HasBinaries(string directory) =>
            new[] { "initdb", "pg_ctl", "postgres" }.All(name => File.Exists(Path.Combine(directory, name)));
    }

    /// <summary>
    /// Creates and starts a cluster. Throws <see cref="PostgresUnavailableException"/> naming what
    /// is missing (and how to install it) when PostgreSQL cannot run here.
    /// </summary>
    public static async Task<PostgresCluster> StartAsync(CancellationToken cancellationToken = default)
    {
        var missing = FindMissing();
        if (missing.Count > 0)
        {
            throw new PostgresUnavailableException(
                $"PostgreSQL prerequisites missing: {string.Join(", ", missing)}. To run these tests, {InstallHint}."
                + (IsCi ? " (CI=true: PostgreSQL tests are not skipped on CI.)" : ""));
        }
        bool asPostgres = Environment.IsPrivilegedProcess;
        // The postgres user must reach the directory: under root, TMPDIR may point somewhere private.
        var parent = asPostgres ? "/tmp" : Path.GetTempPath();
        var root = Path.Combine(parent, $"meshnet-pg-{Guid.NewGuid():N}"[..24]);
        var cluster = new PostgresCluster(root, FindBinDirectory()!, asPostgres);
        try
        {
            Directory.CreateDirectory(root);
            Directory.CreateDirectory(cluster.SocketDirectory);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            if (asPostgres)
            {
                await RunAsync("chown", ["-R", "postgres:postgres", root], root, cancellationToken).ConfigureAwait(false);
            }
            await cluster.RunPostgresAsync("initdb", ["-D", cluster.DataDirectory, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--no-locale"],
                cancellationToken).ConfigureAwait(false);
            await cluster.StartServerAsync(newPort: true, cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A connection string to <paramref name="database"/> over TCP (127.0.0.1, user postgres).</summary>
    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = "postgres",
            Database = database,
            Timeout = 15,
        }.ConnectionString;

    /// <summary>Creates an empty database (<paramref name="name"/>, or a unique one) and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string? name = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        name ??= $"t_{Guid.NewGuid():N}";
        if (!Regex.IsMatch(name, "^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant))
        {
            throw new ArgumentException($"A database name here is 1-63 of [a-z0-9_], not '{name}'.", nameof(name));
        }
        var admin = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Pooling = false };
        await using (var connection = new NpgsqlConnection(admin.ConnectionString))
        {
            await connection.OpenAsync().ConfigureAwait(false);
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\";", connection);
            await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        return ConnectionString(name);
    }

    /// <summary>Restarts the server on the same port: <see cref="StopAsync"/> with <paramref name="mode"/> (smart, fast or immediate), then <see cref="StartAgainAsync"/>.</summary>
    public async Task RestartAsync(string mode = "immediate")
    {
        await StopAsync(mode).ConfigureAwait(false);
        await StartAgainAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the server (<c>pg_ctl stop</c>; <paramref name="mode"/> smart, fast or immediate) and waits until it has.</summary>
    public async Task StopAsync(string mode = "immediate")
    {
        ArgumentException.ThrowIfNullOrEmpty(mode);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            await RunPostgresAsync("pg_ctl", ["-D", DataDirectory, "-m", mode, "-w", "-t", "60", "stop"], default).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts the stopped server again, on the same port.</summary>
    public async Task StartAgainAsync()
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            await StartServerAsync(newPort: false, default).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Stops the server at once (killing the postmaster if <c>pg_ctl</c> cannot) and deletes the directory. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                try
                {
                    await RunPostgresAsync("pg_ctl", ["-D", DataDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], default).ConfigureAwait(false);
                }
                catch (Exception exception) when (exception is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
                {
                    KillPostmaster();
                }
            }
            try
            {
                if (Directory.Exists(_root))
                {
                    Directory.Delete(_root, recursive: true);
                }
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                // A temporary directory left behind is not worth failing a test run for.
            }
        }
        finally
        {
            _gate.Release();
            _gate.Dispose();
        }
    }

    /// <summary>The last lines of the server's log, for failure messages.</summary>
    public string LogTail(int lines = 40)
    {
        try
        {
            return File.Exists(LogPath) ? string.Join('\n', File.ReadLines(LogPath).TakeLast(lines)) : "(no log)";
        }
        catch (IOException exception)
        {
            return $"(log unreadable: {exception.Message})";
        }
    }

    private string SocketDirectory => Path.Combine(_root, "socket");

    private async Task StartServerAsync(bool newPort, CancellationToken cancellationToken)
    {
        // A free port can be taken between choosing it and the server binding it: try a few.
        for (int attempt = 1; ; attempt++)
        {
            if (newPort)
            {
                Port = FreePort();
            }
            string options = string.Create(CultureInfo.InvariantCulture,
                $"-p {Port} -k {SocketDirectory} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB");
            try
            {
                await RunPostgresAsync("pg_ctl", ["-D", DataDirectory, "-l", LogPath, "-w", "-t", "60", "-o", options, "start"], cancellationToken)
                    .ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (newPort && attempt < 3 && !File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
            {
                // Most likely the port; choose another.
            }
        }
    }

    private void KillPostmaster()
    {
        try
        {
            var first = File.ReadLines(Path.Combine(DataDirectory, "postmaster.pid")).FirstOrDefault();
            if (int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out int pid))
            {
                using var process = Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (Exception exception) when (exception is IOException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    private Task RunPostgresAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var executable = Path.Combine(_binDirectory, program);
        return _runAsPostgres
            ? RunAsync("runuser", ["-u", "postgres", "--", executable, .. arguments], _root, cancellationToken, this)
            : RunAsync(executable, arguments, _root, cancellationToken, this);
    }

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, string workingDirectory, CancellationToken cancellationToken,
        PostgresCluster? cluster = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            // The postgres user must be able to enter its working directory.
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        var output = new StringBuilder();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} did not finish within {CommandTimeout.TotalSeconds:0} s.");
        }
        output.Append(await stdout.ConfigureAwait(false)).Append(await stderr.ConfigureAwait(false));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{fileName} {string.Join(' ', arguments)} exited with {process.ExitCode}: {output.ToString().Trim()}"
                + (cluster is null ? "" : $"\nServer log:\n{cluster.LogTail()}"));
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static IReadOnlyList<string> FindMissingCore()
    {
        var missing = new List<string>();
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            missing.Add("a Unix system");
            return missing;
        }
        if (FindBinDirectory() is null)
        {
            missing.Add("PostgreSQL's server binaries (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin or on PATH)");
        }
        if (Environment.IsPrivilegedProcess)
        {
            // Root runs the server as the postgres user, through runuser.
            if (!File.Exists("/usr/sbin/runuser") && !File.Exists("/sbin/runuser") && !File.Exists("/usr/bin/runuser"))
            {
                missing.Add("the command `runuser` (to run PostgreSQL as the postgres user when root)");
            }
            if (!UserExists("postgres"))
            {
                missing.Add("an OS user `postgres` (PostgreSQL does not run as root)");
            }
        }
        return missing;
    }

    private static bool UserExists(string user)
    {
        try
        {
            return File.ReadLines("/etc/passwd").Any(line => line.StartsWith(user + ":", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }
}
