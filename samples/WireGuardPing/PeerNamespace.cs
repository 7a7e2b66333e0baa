using System.Diagnostics;
using System.Net;

namespace MeshNet.Samples.WireGuardPing;

/// <summary>
/// A standard WireGuard peer for the sample: wireguard-go inside its own network namespace,
/// reachable over a veth pair from this process. Everything it creates is removed by
/// <see cref="DisposeAsync"/>, also after a failure.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class PeerNamespace : IAsyncDisposable
{
    public static readonly IPAddress OuterLocal = IPAddress.Parse("10.99.71.1");
    public static readonly IPAddress OuterRemote = IPAddress.Parse("10.99.71.2");
    public static readonly IPAddress TunnelLocalV4 = IPAddress.Parse("10.98.0.1");
    public static readonly IPAddress TunnelRemoteV4 = IPAddress.Parse("10.98.0.2");
    public static readonly IPAddress TunnelLocalV6 = IPAddress.Parse("fd98::1");
    public static readonly IPAddress TunnelRemoteV6 = IPAddress.Parse("fd98::2");
    public const int ListenPort = 51820;

    private readonly string _suffix = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
    private readonly List<Func<Task>> _cleanup = [];

    private string Namespace => "mnping" + _suffix;

    private string VethOutside => "mnpa" + _suffix;

    private string VethInside => "mnpb" + _suffix;

    private string Interface => "mnpwg" + _suffix;

    public string PublicKey { get; private set; } = "";

    /// <summary>Creates the namespace, the veth pair and a configured wireguard-go that accepts <paramref name="meshNetPublicKey"/>.</summary>
    public async Task StartAsync(string meshNetPublicKey)
    {
        await RunAsync("ip", "netns", "add", Namespace);
        _cleanup.Add(async () =>
        {
            var pids = await RunAsync("ip", "netns", "pids", Namespace);
            foreach (var pid in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                await RunAsync("kill", pid.Trim());
            }
            await RunAsync("ip", "netns", "del", Namespace);
            File.Delete($"/var/run/wireguard/{Interface}.sock");
        });
        await RunAsync("ip", "link", "add", VethOutside, "type", "veth", "peer", "name", VethInside);
        _cleanup.Add(() => RunAsync("ip", "link", "del", VethOutside));
        await RunAsync("ip", "link", "set", VethInside, "netns", Namespace);
        await RunAsync("ip", "addr", "add", $"{OuterLocal}/30", "dev", VethOutside);
        await RunAsync("ip", "link", "set", VethOutside, "up");
        await RunAsync("ip", "-n", Namespace, "addr", "add", $"{OuterRemote}/30", "dev", VethInside);
        await RunAsync("ip", "-n", Namespace, "link", "set", VethInside, "up");
        await RunAsync("ip", "-n", Namespace, "link", "set", "lo", "up");

        var start = new ProcessStartInfo("ip", ["netns", "exec", Namespace, "wireguard-go", Interface]);
        start.Environment["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1";
        await RunAsync(start);

        string privateKey = (await RunAsync("wg", "genkey")).Trim();
        PublicKey = (await RunAsync(new ProcessStartInfo("wg", ["pubkey"]), privateKey)).Trim();
        string keyFile = Path.Combine(Directory.CreateTempSubdirectory("mnping").FullName, "key");
        using (var stream = new FileStream(keyFile, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite, // 0600 from the start
        }))
        using (var writer = new StreamWriter(stream))
        {
            await writer.WriteAsync(privateKey);
        }
        try
        {
            await RunAsync("ip", "netns", "exec", Namespace, "wg", "set", Interface, "private-key", keyFile,
                "listen-port", ListenPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "peer", meshNetPublicKey, "allowed-ips", $"{TunnelLocalV4}/32,{TunnelLocalV6}/128");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(keyFile)!, recursive: true);
        }
        await RunAsync("ip", "-n", Namespace, "addr", "add", $"{TunnelRemoteV4}/24", "dev", Interface);
        await RunAsync("ip", "-n", Namespace, "addr", "add", $"{TunnelRemoteV6}/64", "dev", Interface, "nodad");
        await RunAsync("ip", "-n", Namespace, "link", "set", Interface, "up");
    }

    /// <summary>What <c>wg show</c> says inside the namespace.</summary>
    public Task<string> ShowAsync() => RunAsync("ip", "netns", "exec", Namespace, "wg", "show", Interface);

    public async ValueTask DisposeAsync()
    {
        for (int i = _cleanup.Count - 1; i >= 0; i--)
        {
            try
            {
                await _cleanup[i]();
            }
            catch (Exception exception)
            {
                Console.Error.WriteLine($"cleanup: {exception.Message}");
            }
        }
        _cleanup.Clear();
    }

    private static Task<string> RunAsync(string file, params string[] arguments) => RunAsync(new ProcessStartInfo(file, arguments));

    private static async Task<string> RunAsync(ProcessStartInfo start, string? input = null)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = input is not null;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Cannot start {start.FileName}.");
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"'{start.FileName} {string.Join(' ', start.ArgumentList)}' exited with {process.ExitCode}: {(await error).Trim()}");
        }
        return await output;
    }
}
