using System.Globalization;
using System.Text.RegularExpressions;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// The built <c>tests/Hosts/MeshNet.StoreWriterHost</c> run as a child process (a
/// <see cref="SampleProcess"/>): it reports the sequence it started from and each sequence whose
/// saves returned. <see cref="KillAsync"/> ends it at once (SIGKILL), mid-write or not. Disposing
/// kills it if it still runs.
/// </summary>
internal sealed class StoreWriterProcess : IAsyncDisposable
{
    private const string Project = "MeshNet.StoreWriterHost";
    private const string StartLine = @"^start (\d+)$";

    /// <summary>Matches every line: while the start line is awaited, any other line (the host writes its failures to standard error) fails the wait.</summary>
    private const string AnyLine = "^";

    private static readonly Regex SavedLine = new(@"^saved (\d+)$");
    private static readonly Regex ReportLine = new(@"^(start|saved) \d+$");
    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(30);

    private readonly SampleProcess _process;

    private StoreWriterProcess(SampleProcess process) => _process = process;

    /// <summary>The last sequence the host printed as saved; null when it printed none.</summary>
    public ulong? LastSaved
    {
        get
        {
            var lines = _process.Lines;
            for (int i = lines.Count - 1; i >= 0; i--)
            {
                if (SavedLine.Match(lines[i]) is { Success: true } match)
                {
                    return ulong.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                }
            }
            return null;
        }
    }

    /// <summary>What the host printed besides its reports (<c>start N</c>, <c>saved N</c>): its failures, on standard error.</summary>
    public string Errors => string.Join("\n", _process.Lines.Where(line => !ReportLine.IsMatch(line)));

    public static StoreWriterProcess Start(string directory) =>
        new(SampleProcess.StartHost(Project, new Dictionary<string, string>(), directory, "--seconds", "20"));

    /// <summary>Waits for the sequence the host found in the stores when it started (0: none); fails at once when it prints anything else first or exits.</summary>
    public async Task<ulong> WaitForStartAsync(TimeSpan timeout)
    {
        var match = await _process.WaitForLineAsync(StartLine, timeout, failOn: AnyLine);
        return ulong.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Kills the process at once and waits until it is gone and its output is read to the end.</summary>
    public Task KillAsync() => _process.KillAsync(KillTimeout);

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
