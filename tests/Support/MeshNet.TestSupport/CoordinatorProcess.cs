using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport;

/// <summary>
/// A coordination server of a PostgreSQL deployment run as its own process: the built
/// <c>samples/Coordinator</c> with <c>MESHNET_POSTGRES</c>, <c>MESHNET_SERVER_ID</c> and a loopback
/// URL, tuned through <c>MESHNET_COORDINATION__*</c>. It can be killed (SIGKILL), paused
/// (SIGSTOP/SIGCONT), stopped cleanly (SIGTERM) and started again on the same port. Disposing kills
/// whatever still runs.
/// </summary>
public sealed class CoordinatorProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    private readonly Dictionary<string, string> _environment;
    private readonly int? _uid;
    private readonly List<SampleProcess> _runs = [];
    private bool _paused;

    private CoordinatorProcess(string serverId, int port, Dictionary<string, string> environment, int? uid)
    {
        ServerId = serverId;
        Port = port;
        _environment = environment;
        _uid = uid;
    }

    public string ServerId { get; }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>The current run (the latest process started).</summary>
    public SampleProcess Process => _runs[^1];

    /// <summary>True while the current run is alive and not paused.</summary>
    public bool IsServing => !_paused && !Process.HasExited;

    /// <summary>The output of every run so far.</summary>
    public string Output => string.Join("\n--- restarted ---\n", _runs.Select(run => run.Output));

    /// <summary>Starts a server and waits until it listens.</summary>
    /// <param name="serverId">Its id (s1, s2, ...).</param>
    /// <param name="postgres">The deployment's connection string.</param>
    /// <param name="adminToken">The shared admin token.</param>
    /// <param name="tuning">CoordinationOptions settings by property name (e.g. LeaseTtl = 00:00:02).</param>
    /// <param name="uid">Run under this user id (root only), e.g. for iptables owner matches.</param>
    public static async Task<CoordinatorProcess> StartAsync(string serverId, string postgres, string adminToken,
        IReadOnlyDictionary<string, string> tuning, int? uid = null)
    {
        int port = FreePort();
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["MESHNET_POSTGRES"] = postgres,
            ["MESHNET_SERVER_ID"] = serverId,
            ["MESHNET_URLS"] = $"http://127.0.0.1:{port}",
            ["MESHNET_ADMIN_TOKEN"] = adminToken,
            ["Logging__LogLevel__Default"] = "Information",
            ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
            ["DOTNET_gcServer"] = "0",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__TimestampFormat"] = "HH:mm:ss.fff ",
            ["Logging__Console__FormatterOptions__UseUtcTimestamp"] = "true",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
            // Every rebalancing cycle, balanced ones too (tests count cycles).
            ["Logging__LogLevel__MeshNet.Coordination.Sharding.Rebalancer"] = "Debug",
        };
        if (uid is not null)
        {
            // A user without a home: the runtime needs somewhere writable.
            environment["HOME"] = Path.GetTempPath();
            environment["DOTNET_CLI_HOME"] = Path.GetTempPath();
        }
        foreach (var (name, value) in tuning)
        {
            environment[$"MESHNET_COORDINATION__{name.ToUpperInvariant()}"] = value;
        }
        var server = new CoordinatorProcess(serverId, port, environment, uid);
        try
        {
            await server.StartRunAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Formats a duration as configuration binding reads it.</summary>
    public static string Duration(TimeSpan value) => value.ToString("c", CultureInfo.InvariantCulture);

    /// <summary>SIGKILL: the process dies at once, holding its leases (no release).</summary>
    public async Task KillAsync()
    {
        if (_paused)
        {
            Process.Signal(ProcessSignals.Continue);
            _paused = false;
        }
        await Process.KillAsync(ExitTimeout).ConfigureAwait(false);
    }

    /// <summary>SIGTERM: a clean stop (streams end, leases are released).</summary>
    public async Task StopAsync()
    {
        Resume();
        Process.Signal(ProcessSignals.Terminate);
        await Process.WaitForExitAsync(ExitTimeout).ConfigureAwait(false);
    }

    /// <summary>SIGSTOP: the process stops running (its sockets stay open) until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        Process.Signal(ProcessSignals.Stop);
        _paused = true;
    }

    /// <summary>SIGCONT.</summary>
    public void Resume()
    {
        if (_paused)
        {
            Process.Signal(ProcessSignals.Continue);
            _paused = false;
        }
    }

    /// <summary>Starts the server again on the same port (after a kill or a stop).</summary>
    public Task RestartAsync() => StartRunAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var run in _runs)
        {
            if (!run.HasExited)
            {
                run.Signal(ProcessSignals.Continue);
            }
            await run.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task StartRunAsync()
    {
        var run = SampleProcess.StartAssembly(SampleProcess.BuiltAssembly("samples", "Coordinator"), _environment, [], _uid);
        _runs.Add(run);
        await run.WaitForLineAsync("Application started", StartTimeout, failOn: "^coordinator: ").ConfigureAwait(false);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
