using System.Diagnostics;
using System.Globalization;
using System.Text;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// The built <c>tests/Hosts/MeshNet.StoreWriterHost</c> run as a child process: it reports the
/// sequence it started from and each sequence whose saves returned. <see cref="Kill"/> ends it
/// at once (SIGKILL), mid-write or not. Disposing kills it if it still runs.
/// </summary>
internal sealed class StoreWriterProcess : IAsyncDisposable
{
    private const string Project = "MeshNet.StoreWriterHost";
    private readonly Process _process;
    private readonly TaskCompletionSource<ulong> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly StringBuilder _errors = new();
    private long _lastSaved = -1;

    private StoreWriterProcess(Process process)
    {
        _process = process;
    }

    /// <summary>The sequence the host found in the stores when it started (0: none).</summary>
    public Task<ulong> Started => _started.Task;

    /// <summary>The last sequence the host printed as saved; null when it printed none.</summary>
    public ulong? LastSaved
    {
        get
        {
            long last = Interlocked.Read(ref _lastSaved);
            return last >= 0 ? (ulong)last : null;
        }
    }

    /// <summary>What the host wrote to standard error.</summary>
    public string Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToString();
            }
        }
    }

    public static StoreWriterProcess Start(string directory)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(SampleProcess.HostAssemblyOf(Project));
        info.ArgumentList.Add(directory);
        info.ArgumentList.Add("--seconds");
        info.ArgumentList.Add("20");
        info.Environment["DOTNET_NOLOGO"] = "1";
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var writer = new StoreWriterProcess(process);
        process.OutputDataReceived += (_, e) => writer.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (writer._errors)
                {
                    writer._errors.AppendLine(e.Data);
                }
                writer._started.TrySetException(new InvalidOperationException($"The store writer failed: {e.Data}"));
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return writer;
    }

    /// <summary>Kills the process at once and waits until it is gone and its output is read to the end.</summary>
    public async Task KillAsync()
    {
        Kill();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    private void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            _started.TrySetException(new InvalidOperationException($"The store writer ended before it started writing. {Errors}"));
            return;
        }
        if (line.StartsWith("start ", StringComparison.Ordinal))
        {
            _started.TrySetResult(ulong.Parse(line["start ".Length..], CultureInfo.InvariantCulture));
        }
        else if (line.StartsWith("saved ", StringComparison.Ordinal))
        {
            Interlocked.Exchange(ref _lastSaved, long.Parse(line["saved ".Length..], CultureInfo.InvariantCulture));
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                await KillAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        _process.Dispose();
    }
}
