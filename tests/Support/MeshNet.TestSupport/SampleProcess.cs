using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MeshNet.TestSupport;

/// <summary>
/// A built sample run as its own process (<c>dotnet samples/NAME/bin/CONFIG/net10.0/NAME.dll</c>,
/// the output of the solution build that <c>./test.sh</c> runs, in the test's own configuration),
/// with its output collected line by line. Disposing kills it (and its children) if it still runs,
/// so a failing test leaves nothing behind.
/// </summary>
public sealed class SampleProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _pendingStreams = 2;

    // Guarded by _gate.
    private readonly List<string> _lines = [];
    private readonly StringBuilder _all = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SampleProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Everything the process wrote so far (standard output and error, interleaved by line).</summary>
    public string Output
    {
        get
        {
            lock (_gate)
            {
                return _all.ToString();
            }
        }
    }

    /// <summary>The lines printed so far (standard output and error, interleaved by line).</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>
    /// The number of lines printed so far: take it before sending a command and pass it to
    /// <see cref="WaitForLineAsync"/> as <c>since</c> to wait for an answer printed after it.
    /// </summary>
    public int LineCount
    {
        get
        {
            lock (_gate)
            {
                return _lines.Count;
            }
        }
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>The process id.</summary>
    public int Pid => _process.Id;

    /// <summary>True once the process has exited and its output is read to the end.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Sends a signal (SIGSTOP, SIGCONT, SIGTERM...) to the process; false when it is gone.</summary>
    public bool Signal(int signal) => ProcessSignals.Send(_process.Id, signal);

    /// <summary>The built assembly of a sample: <c>samples/NAME/bin/CONFIG/net10.0/NAME.dll</c>.</summary>
    public static string AssemblyOf(string sample) => BuiltAssembly("samples", sample);

    /// <summary>The built assembly of a test host program (tests/Hosts/<paramref name="host"/>), in the test assembly's own configuration.</summary>
    public static string HostAssemblyOf(string host) => BuiltAssembly(Path.Combine("tests", "Hosts"), host);

    /// <summary>Starts a test host (<c>tests/Hosts/NAME/bin/CONFIG/net10.0/NAME.dll</c>) as its own process.</summary>
    public static SampleProcess StartHost(string host, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        StartAssembly(HostAssemblyOf(host), environment, args);

    /// <summary>Writes a line to the process's standard input.</summary>
    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>The built assembly of <paramref name="folder"/>/<paramref name="name"/> (e.g. "samples", "Coordinator"), in the test assembly's configuration.</summary>
    public static string BuiltAssembly(string folder, string name) => BuiltAssemblyCore(folder, name);

    private static string BuiltAssemblyCore(string folder, string sample)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "MeshNet.sln")))
        {
            directory = directory.Parent;
        }
        if (directory is null)
        {
            throw new InvalidOperationException($"No MeshNet.sln above {AppContext.BaseDirectory}.");
        }
        // The test assembly's own configuration (bin/Release/... under ./test.sh, bin/Debug/... by default).
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var path = Path.Combine(directory.FullName, folder, sample, "bin", configuration, "net10.0", $"{sample}.dll");
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} is missing: build the solution first (dotnet build MeshNet.sln -c {configuration}).");
        }
        return path;
    }

    public static SampleProcess Start(string sample, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        StartAssembly(AssemblyOf(sample), environment, args);

    /// <summary>
    /// Starts a built assembly as its own process; with <paramref name="uid"/>, under that user and
    /// group id (root only, through <c>setpriv</c>), e.g. so that iptables can match its packets
    /// with <c>-m owner --uid-owner</c>; with <paramref name="niceness"/>, at that scheduling
    /// priority (every thread of it, through <c>nice</c>).
    /// </summary>
    public static SampleProcess StartAssembly(string assembly, IReadOnlyDictionary<string, string> environment, string[] args, int? uid = null,
        int? niceness = null)
    {
        // Wrappers first (nice, then setpriv), each handing on to the next command.
        var command = new List<string>();
        if (niceness is { } nice)
        {
            command.AddRange(["nice", "-n", nice.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }
        if (uid is { } id)
        {
            command.AddRange(["setpriv", $"--reuid={id}", $"--regid={id}", "--clear-groups", "--"]);
        }
        command.Add("dotnet");
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }
        info.ArgumentList.Add(assembly);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }
        info.Environment["DOTNET_NOLOGO"] = "1";
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var sampleProcess = new SampleProcess(process);
        process.OutputDataReceived += (_, e) => sampleProcess.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => sampleProcess.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sampleProcess;
    }

    /// <summary>Runs a sample to its end (killed after <paramref name="timeout"/>); returns it for its exit code and output.</summary>
    public static async Task<SampleProcess> RunAsync(string sample, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] args)
    {
        var process = Start(sample, environment, args);
        try
        {
            await process.WaitForExitAsync(timeout);
            return process;
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{string.Join(' ', _process.StartInfo.ArgumentList)} did not exit within {timeout.TotalSeconds} s. Output:\n{Output}");
        }
    }

    /// <summary>
    /// Waits for a line of output that matches <paramref name="pattern"/>; returns the match.
    /// Only lines printed after the first <paramref name="since"/> lines count (see <see cref="LineCount"/>;
    /// 0: every line). A line matching <paramref name="failOn"/> (checked after <paramref name="pattern"/>)
    /// fails the wait at once, as does the process's exit.
    /// </summary>
    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan timeout, int since = 0, string? failOn = null)
    {
        var regex = new Regex(pattern);
        var failure = failOn is null ? null : new Regex(failOn);
        using var deadline = new CancellationTokenSource(timeout);
        int next = since;
        while (true)
        {
            List<string> fresh;
            bool exited;
            Task changed;
            lock (_gate)
            {
                // _exited is set after the last line is in: seen here, the lines below are all of them.
                exited = _exited.Task.IsCompleted;
                next = Math.Min(next, _lines.Count);
                fresh = _lines.GetRange(next, _lines.Count - next);
                next = _lines.Count;
                changed = _changed.Task;
            }
            foreach (var line in fresh)
            {
                if (regex.Match(line) is { Success: true } match)
                {
                    return match;
                }
                if (failure is not null && failure.IsMatch(line))
                {
                    throw new InvalidOperationException($"The process printed \"{line}\" while /{pattern}/ was awaited. Output:\n{Output}");
                }
            }
            if (exited)
            {
                throw new InvalidOperationException($"The process exited (code {_process.ExitCode}) without printing /{pattern}/. Output:\n{Output}");
            }
            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"No line matched /{pattern}/ within {timeout.TotalSeconds} s. Output:\n{Output}");
            }
        }
    }

    /// <summary>Kills the process (and its children) at once; waits until it is gone and its output is read to the end.</summary>
    public async Task KillAsync(TimeSpan timeout)
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        await WaitForExitAsync(timeout);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Decrement(ref _pendingStreams) == 0)
            {
                // Both streams are at their end: the output is complete once the process is gone.
                _ = Task.Run(async () =>
                {
                    await _process.WaitForExitAsync();
                    _exited.TrySetResult();
                    Changed();
                });
            }
            return;
        }
        lock (_gate)
        {
            _lines.Add(line);
            _all.AppendLine(line);
        }
        Changed();
    }

    /// <summary>Wakes the waiters of <see cref="WaitForLineAsync"/>.</summary>
    private void Changed()
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        changed.TrySetResult();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
        catch (InvalidOperationException)
        {
            // Never started, or already gone.
        }
        _process.Dispose();
    }
}
