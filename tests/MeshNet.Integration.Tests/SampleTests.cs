using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests;

/// <summary>
/// The samples do what their READMEs say, run as processes from the solution build: the
/// QuickStart (the README's main job), and the standalone coordinator with two nodes joining it
/// from other processes.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SampleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task TheQuickStartServesAPageFetchedByNamePrintsTheStatusAndExitsCleanly()
    {
        await using var run = await SampleProcess.RunAsync("QuickStart", new Dictionary<string, string>(), Timeout);
        var output = run.Output;
        run.ExitCode.Should().Be(0, output);
        output.Should().Contain("client: GET http://web/ (HTTP/1.1)")
            .And.Contain("web: GET / HTTP/1.1 from client")
            .And.Contain("client: 200 OK, HTTP/1.1")
            .And.Contain("client: GET http://web:8080/ (HTTP/2.0)")
            .And.Contain("web: GET / HTTP/2 from client")
            .And.Contain("client: 200 OK, HTTP/2.0")
            .And.Contain("<h1>Hello from web</h1>")
            .And.Contain("Hello, client! You are client.quickstart.meshnet.internal")
            .And.Contain("Saving an ACL policy: only alice@example.com may reach tag:web on ports 80 and 8080...")
            .And.Contain("observer: GET http://web/ (HTTP/1.1)")
            .And.Contain("Everything shut down cleanly.");
        output.Should().MatchRegex(@"(?m)^  policy version \d+ enforced by every node \d+ ms after the save$");
        output.Should().MatchRegex(@"(?m)^observer: refused after \d+ ms: PolicyDenied: ");
        output.Should().MatchRegex(@"(?m)^web: [1-9]\d* packet\(s\) denied by the policy$");
        foreach (var name in new[] { "web", "client", "observer" })
        {
            output.Should().MatchRegex($@"(?m)^node {name} \({name}\.quickstart\.meshnet\.internal\) 100\.\d+\.\d+\.\d+, fd7a:115c:a1e0:[0-9a-f:]+, WireGuard port \d+, control connected$");
        }
        output.Should().Contain("peer       endpoint               last handshake     bytes in  bytes out  online");
        // web saw client: a handshake and traffic both ways; nobody talked to the observer.
        output.Should().MatchRegex(@"(?m)^  client     127\.0\.0\.1:\d+ +\d+\.\d s ago +[1-9]\d* +[1-9]\d*  yes");
        output.Should().MatchRegex(@"(?m)^  observer   127\.0\.0\.1:\d+ +never +0 +0  yes");
    }

    [Fact]
    public async Task TheCoordinatorReadmeStepsJoinTwoNodesFromOtherProcessesAndOneDialsTheOther()
    {
        var directory = Directory.CreateTempSubdirectory("meshnet-coordinator-sample-").FullName;
        try
        {
            const string token = "sample-test-admin-token-0123456789";
            // 1. Start the coordinator (a free port on loopback).
            await using var coordinator = SampleProcess.Start("Coordinator", new Dictionary<string, string>
            {
                ["MESHNET_URLS"] = "http://127.0.0.1:0",
                ["MESHNET_DATABASE_PATH"] = Path.Combine(directory, "coordination.db"),
                ["MESHNET_ADMIN_TOKEN"] = token,
            });
            var url = (await coordinator.WaitForLineAsync(@"^Coordinator listening on (http://127\.0\.0\.1:\d+)$", Timeout)).Groups[1].Value;

            // 2. Create a tailnet and an auth key with the admin commands.
            var admin = new Dictionary<string, string> { ["MESHNET_SERVER_URL"] = url, ["MESHNET_ADMIN_TOKEN"] = token };
            await using (var created = await SampleProcess.RunAsync("Coordinator", admin, Timeout, "create-tailnet", "demo"))
            {
                created.ExitCode.Should().Be(0, created.Output);
                created.Output.Should().Contain("Created tailnet demo (domain demo.meshnet.internal");
            }
            string key;
            await using (var authKey = await SampleProcess.RunAsync("Coordinator", admin, Timeout, "create-authkey", "--tailnet", "demo", "--reusable", "--lifetime", "1h"))
            {
                authKey.ExitCode.Should().Be(0, authKey.Output);
                key = authKey.Output.Split('\n').Single(line => line.StartsWith("mnkey-", StringComparison.Ordinal)).Trim();
            }

            // 3. Two nodes join from processes of their own; one echoes, the other dials it by name.
            Dictionary<string, string> Node(string name) => new()
            {
                ["MESHNET_CONTROL_URL"] = url,
                ["MESHNET_AUTH_KEY"] = key,
                ["MESHNET_HOSTNAME"] = name,
                ["MESHNET_STATE_FILE"] = Path.Combine(directory, $"{name}.json"),
                ["MESHNET_BIND_ADDRESS"] = "127.0.0.1",
            };
            await using var alpha = SampleProcess.Start("JoinNode", Node("alpha"), "--listen", "7000");
            await alpha.WaitForLineAsync(@"^Listening on alpha\.demo\.meshnet\.internal:7000 \(echo\)", Timeout);
            await using (var beta = await SampleProcess.RunAsync("JoinNode", Node("beta"), Timeout, "--dial", "alpha:7000"))
            {
                beta.ExitCode.Should().Be(0, beta.Output);
                beta.Output.Should().Contain("Joined tailnet demo as beta.demo.meshnet.internal")
                    .And.MatchRegex(@"Reply from alpha \(100\.\d+\.\d+\.\d+:7000\): hello from beta");
            }
            await alpha.WaitForLineAsync(@"^Connection from beta \(100\.", Timeout);

            // 4. The coordinator lists both nodes.
            await using (var nodes = await SampleProcess.RunAsync("Coordinator", admin, Timeout, "list-nodes", "--tailnet", "demo"))
            {
                nodes.ExitCode.Should().Be(0, nodes.Output);
                nodes.Output.Should().MatchRegex(@"(?m)^1 +alpha +100\.").And.MatchRegex(@"(?m)^2 +beta +100\.");
            }
            File.Exists(Path.Combine(directory, "alpha.json")).Should().BeTrue("the node keeps its identity in its state file");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task WebOnTailnetServesItsGreetingOnlyOnTheTailnetToATestNodeAndToJoinNode()
    {
        await using var tailnet = await TestTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        Dictionary<string, string> Node(string? name) => new()
        {
            ["MESHNET_CONTROL_URL"] = tailnet.Server.Url,
            ["MESHNET_AUTH_KEY"] = key,
            ["MESHNET_HOSTNAME"] = name ?? "",
            ["MESHNET_BIND_ADDRESS"] = "127.0.0.1",
        };
        // The README's steps: the app with the default name, on port 8080 of the tailnet.
        var environment = Node(null);
        environment["MESHNET_PORT"] = "8080";
        environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0"; // ignored: the app has only a tailnet endpoint
        await using var web = SampleProcess.Start("WebOnTailnet", environment);
        var domain = tailnet.Domain.Replace(".", @"\.", StringComparison.Ordinal);
        await web.WaitForLineAsync($@"^Serving http://web\.{domain}:8080/ on the tailnet only", Timeout);
        web.Output.Should().MatchRegex($@"(?m)^Kestrel listens on: http://web\.{domain}:8080$", "Kestrel bound no ordinary socket (no default localhost endpoint, ASPNETCORE_URLS ignored)");

        // A node of the test fetches the greeting, over HTTP/1.1.
        var tester = await tailnet.StartNodeAsync("tester", key);
        await TestTailnet.WaitForPeerAsync(tester, "web");
        using (var http = new HttpClient(tester.CreateHttpMessageHandler()) { Timeout = Timeout })
        {
            (await http.GetStringAsync("http://web:8080/")).Should().Be("Hello, tester!\n");
        }
        await web.WaitForLineAsync(@"^GET / HTTP/1\.1 from tester \(100\.", Timeout);

        // samples/JoinNode fetches it too, from a process of its own.
        await using (var beta = await SampleProcess.RunAsync("JoinNode", Node("beta"), Timeout, "--get", "http://web:8080/"))
        {
            beta.ExitCode.Should().Be(0, beta.Output);
            beta.Output.Should().Contain("Response from web (200 OK, HTTP/1.1): Hello, beta!");
        }
    }

    [Fact]
    public async Task WebOnTailnetNamesTheMissingSettings()
    {
        await using var noUrl = await SampleProcess.RunAsync("WebOnTailnet", new Dictionary<string, string> { ["MESHNET_CONTROL_URL"] = "" }, Timeout);
        noUrl.ExitCode.Should().Be(2, noUrl.Output);
        noUrl.Output.Should().Contain("set MESHNET_CONTROL_URL");

        await using var noKey = await SampleProcess.RunAsync("WebOnTailnet", new Dictionary<string, string>
        {
            ["MESHNET_CONTROL_URL"] = "http://127.0.0.1:9",
            ["MESHNET_AUTH_KEY"] = "",
        }, Timeout);
        noKey.ExitCode.Should().Be(2, noKey.Output);
        noKey.Output.Should().Contain("set MESHNET_AUTH_KEY");
    }

    [Fact]
    public async Task TheCoordinatorRefusesPlainHttpOnAnAddressThatIsNotLoopbackAndAMissingToken()
    {
        await using var plain = await SampleProcess.RunAsync("Coordinator", new Dictionary<string, string>
        {
            ["MESHNET_URLS"] = "http://0.0.0.0:0",
            ["MESHNET_ADMIN_TOKEN"] = "sample-test-admin-token-0123456789",
            ["MESHNET_DATABASE_PATH"] = Path.Combine(Path.GetTempPath(), "meshnet-never-created.db"),
        }, Timeout);
        plain.ExitCode.Should().Be(2, plain.Output);
        plain.Output.Should().Contain("refusing plain HTTP on http://0.0.0.0:0").And.Contain("MESHNET_TLS_CERT");

        await using var noToken = await SampleProcess.RunAsync("Coordinator", new Dictionary<string, string>
        {
            ["MESHNET_URLS"] = "http://127.0.0.1:0",
            ["MESHNET_ADMIN_TOKEN"] = "",
        }, Timeout);
        noToken.ExitCode.Should().Be(2, noToken.Output);
        noToken.Output.Should().Contain("MESHNET_ADMIN_TOKEN");
    }
}
