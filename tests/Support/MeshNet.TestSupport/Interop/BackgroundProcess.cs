using System.Diagnostics;
using System.Text;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// A long-running command (wireguard-go in the foreground, <c>iperf3 -s</c>, <c>socat</c>, ...)
/// whose standard output and error are collected in <see cref="Output"/>. Disposal stops it:
/// SIGTERM, then SIGKILL after a grace period. Idempotent.
/// </summary>
public sealed class BackgroundProcess : IAsyncDisposable
{
    private const int MaxOutput = 1 << 20;

    private readonly Process _process;
    private readonly StringBuilder _output = new(); // guarded by itself
    private int _disposed;

    private BackgroundProcess(Process process, string commandLine)
    {
        _process = process;
        CommandLine = commandLine;
        Id = process.Id;
    }

    /// <summary>The pid of the started process.</summary>
    public int Id { get; }

    /// <summary>The command line, quoted for display.</summary>
    public string CommandLine { get; }

    /// <summary>True once the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, or null while the process runs.</summary>
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>Standard output and standard error so far, interleaved by line (the first MiB).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts a command; it is not waited for. Throws <see cref="ShellCommandException"/> if it cannot start.</summary>
    public static BackgroundProcess Start(string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var commandLine = Shell.FormatCommandLine(fileName, arguments);
        var process = Shell.Start(Shell.CreateStartInfo(fileName, arguments, environment), commandLine);
        var background = new BackgroundProcess(process, commandLine);
        process.OutputDataReceived += (_, e) => background.Append(e.Data);
        process.ErrorDataReceived += (_, e) => background.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        return background;
    }

    /// <summary>Waits for the process to exit by itself.</summary>
    public Task WaitForExitAsync(CancellationToken cancellationToken = default) => _process.WaitForExitAsync(cancellationToken);

    /// <summary>Sends SIGTERM, waits up to <paramref name="grace"/>, then SIGKILLs and waits for the exit.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (!_process.HasExited)
        {
            ProcessSignals.Send(Id, ProcessSignals.Terminate);
            if (!await WaitForExitAsync(grace).ConfigureAwait(false))
            {
                Shell.KillTree(_process);
                if (!await WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false))
                {
                    throw new InvalidOperationException($"`{CommandLine}` (pid {Id}) did not exit after SIGKILL.");
                }
            }
        }
    }

    /// <summary>Stops the process (5 s grace after SIGTERM) and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{CommandLine} (pid {Id})";

    private async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            // Exited, but a descendant still holds the output pipes: the process itself is gone.
            return _process.HasExited;
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < MaxOutput)
            {
                _output.AppendLine(line);
            }
        }
    }
}
