using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MeshNet.Integration.Tests.Infrastructure;

/// <summary>
/// A built sample run as its own process (<c>dotnet samples/NAME/bin/CONFIG/net10.0/NAME.dll</c>,
/// the output of the solution build that <c>./test.sh</c> runs, in the test's own configuration),
/// with its output collected line by line. Disposing kills it (and its children) if it still runs,
/// so a failing test leaves nothing behind.
/// </summary>
internal sealed class SampleProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly StringBuilder _all = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _pendingStreams = 2;

    private SampleProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Everything the process wrote so far (standard output and error, interleaved by line).</summary>
    public string Output
    {
        get
        {
            lock (_all)
            {
                return _all.ToString();
            }
        }
    }

    public int ExitCode => _process.ExitCode;

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

    private static string BuiltAssembly(string folder, string sample)
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

    private static SampleProcess StartAssembly(string assembly, IReadOnlyDictionary<string, string> environment, string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
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
            throw new TimeoutException($"{_process.StartInfo.ArgumentList[0]} did not exit within {timeout.TotalSeconds} s. Output:\n{Output}");
        }
    }

    /// <summary>Waits for a line of output that matches <paramref name="pattern"/>; returns the match.</summary>
    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan timeout)
    {
        var regex = new Regex(pattern);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            foreach (var line in _lines)
            {
                if (regex.Match(line) is { Success: true } match)
                {
                    return match;
                }
            }
            if (_exited.Task.IsCompleted)
            {
                throw new InvalidOperationException($"The process exited (code {_process.ExitCode}) without printing /{pattern}/. Output:\n{Output}");
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"No line matched /{pattern}/ within {timeout.TotalSeconds} s. Output:\n{Output}");
            }
            await Task.Delay(50);
        }
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
                });
            }
            return;
        }
        _lines.Enqueue(line);
        lock (_all)
        {
            _all.AppendLine(line);
        }
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
