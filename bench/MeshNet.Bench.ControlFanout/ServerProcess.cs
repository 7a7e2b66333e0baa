using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;

namespace MeshNet.Bench.ControlFanout;

/// <summary>
/// A coordination server in a child process (<see cref="ServeMode"/>), so that its memory is
/// measured apart from the simulated nodes'. Disposing stops it (and kills it if it hangs).
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, string url, string adminToken)
    {
        _process = process;
        Url = url;
        AdminToken = adminToken;
    }

    public string Url { get; }

    public string AdminToken { get; }

    public static async Task<ServerProcess> StartAsync(CancellationToken cancellationToken)
    {
        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("The benchmark's own executable is unknown.");
        var start = new ProcessStartInfo(self)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ServerProcess).Assembly.Location);
        }
        start.ArgumentList.Add(ServeMode.Argument);
        start.Environment[ServeMode.AdminTokenVariable] = token;
        var process = Process.Start(start) ?? throw new InvalidOperationException("The server process did not start.");
        try
        {
            var line = await process.StandardOutput.ReadLineAsync(cancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
            if (line is null || !line.StartsWith("ready ", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"The server process did not start: '{line}'.");
            }
            return new ServerProcess(process, line["ready ".Length..], token);
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    /// <summary>The server's managed heap (after a full collection) and working set, in bytes.</summary>
    public async Task<(long Managed, long WorkingSet)> MeasureMemoryAsync(CancellationToken cancellationToken)
    {
        await _process.StandardInput.WriteLineAsync("mem");
        await _process.StandardInput.FlushAsync(cancellationToken);
        var line = await _process.StandardOutput.ReadLineAsync(cancellationToken) ?? throw new InvalidOperationException("The server process exited.");
        var parts = line.Split(' ');
        return (long.Parse(parts[1], CultureInfo.InvariantCulture), long.Parse(parts[2], CultureInfo.InvariantCulture));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _process.StandardInput.WriteLineAsync("quit");
            await _process.StandardInput.FlushAsync();
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(15));
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException)
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.Dispose();
    }
}
