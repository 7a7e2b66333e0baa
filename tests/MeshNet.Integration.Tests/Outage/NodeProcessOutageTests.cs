using System.Diagnostics;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// The outage scenarios with each node in its own OS process (<c>tests/Hosts/MeshNet.NodeHost</c>:
/// identity in a state file, netmap cache in a file): with coordination stopped, an established
/// connection and a new one work; a node process killed and started again while coordination is
/// down starts from its files and both sides reach each other.
/// </summary>
[Trait("Category", "Outage")]
public sealed class NodeProcessOutageTests
{
    private const string Host = "MeshNet.NodeHost";
    private static readonly TimeSpan Timeout = TestTailnet.Timeout;
    private static readonly TimeSpan ReachBound = TimeSpan.FromSeconds(2);
    private static readonly Dictionary<string, string> NoEnvironment = [];

    [Fact]
    public async Task NodeProcessesKeepTalkingWithoutCoordinationAndOneRestartsFromItsFilesWhileItIsDown()
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        string[] Args(string name, string? authKey)
        {
            var args = new List<string>
            {
                "--control", tailnet.Url, "--hostname", name, "--serve", "5000",
                "--state", Path.Combine(tailnet.Directory, $"{name}.state"),
                "--netmap", Path.Combine(tailnet.Directory, $"{name}.netmap"),
            };
            if (authKey is not null)
            {
                args.AddRange(["--auth-key", authKey]);
            }
            return [.. args];
        }

        var a = tailnet.Own(SampleProcess.StartHost(Host, NoEnvironment, Args("a", key)));
        await a.WaitForLineAsync("^ready .*source=Live", Timeout);
        var b = tailnet.Own(SampleProcess.StartHost(Host, NoEnvironment, Args("b", key)));
        await b.WaitForLineAsync("^ready .*source=Live", Timeout);
        await WaitForStatusAsync(a, "control=True peers=1");
        await WaitForStatusAsync(b, "control=True peers=1");
        await WaitForCacheAsync(tailnet, "a", "b");
        await WaitForCacheAsync(tailnet, "b", "a");

        await CommandAsync(b, "dial a 5000 before", "^connected before$");
        await CommandAsync(b, "send before hello", "^reply before hello$");

        await tailnet.StopControlAsync();
        await WaitForStatusAsync(a, "control=False");
        await WaitForStatusAsync(b, "control=False");

        // The connection opened before the outage, and a new one.
        await CommandAsync(b, "send before during the outage", "^reply before during the outage$");
        await CommandAsync(b, "dial a 5000 during", "^connected during$");
        await CommandAsync(b, "send during new connection", "^reply during new connection$");

        // a's process dies and comes back with the service still down (no auth key: its state file registers it).
        await a.DisposeAsync();
        var restarted = tailnet.Own(SampleProcess.StartHost(Host, NoEnvironment, Args("a", null)));
        await restarted.WaitForLineAsync("^ready .*source=Cached", Timeout);

        var reach = Stopwatch.StartNew();
        await CommandAsync(restarted, "dial b 5000 out", "^connected out$");
        await CommandAsync(restarted, "send out from the restarted process", "^reply out from the restarted process$");
        reach.Elapsed.Should().BeLessThan(ReachBound, "the restarted process reaches its peer at once (the issue's criterion)");

        reach.Restart();
        await CommandAsync(b, "dial a 5000 back", "^connected back$");
        await CommandAsync(b, "send back to the restarted process", "^reply back to the restarted process$");
        reach.Elapsed.Should().BeLessThan(ReachBound, "the peer reaches the restarted process at once (the issue's criterion)");
    }

    /// <summary>What the host prints when a command fails (tests/Hosts/MeshNet.NodeHost): the wait fails at once.</summary>
    private const string HostError = "^error ";

    /// <summary>Sends a command and waits for its answer: a line printed after it was sent, not an error.</summary>
    private static async Task CommandAsync(SampleProcess process, string command, string expected)
    {
        int sent = process.LineCount;
        await process.WriteLineAsync(command);
        await process.WaitForLineAsync(expected, Timeout, since: sent, failOn: HostError);
    }

    /// <summary>Asks for the status until an answer to one of this wait's requests matches (an earlier status line does not count).</summary>
    private static async Task WaitForStatusAsync(SampleProcess process, string expected)
    {
        int since = process.LineCount;
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            await process.WriteLineAsync("status");
            try
            {
                await process.WaitForLineAsync($"^status .*{expected}", TimeSpan.FromMilliseconds(300), since, HostError);
                return;
            }
            catch (TimeoutException) when (DateTime.UtcNow < deadline)
            {
            }
        }
    }

    /// <summary>Waits until the node's netmap file holds <paramref name="peer"/> (read with its state file, as the node does).</summary>
    private static Task WaitForCacheAsync(OutageTailnet tailnet, string name, string peer) =>
        TestTailnet.WaitUntilAsync(() =>
        {
            try
            {
                var store = new FileStateStore(Path.Combine(tailnet.Directory, $"{name}.state"));
                using var identity = store.LoadAsync().AsTask().GetAwaiter().GetResult();
                var bytes = File.ReadAllBytes(Path.Combine(tailnet.Directory, $"{name}.netmap"));
                return MeshCachedNetmap.Deserialize(bytes, identity!).ToSnapshot().Peers.Values.Any(node => node.Name == peer);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or MeshException)
            {
                return false;
            }
        }, $"{name}'s netmap file to hold {peer}");
}
