// MeshNet QuickStart: a coordination service and three nodes in this process. "web" serves a
// small page with ASP.NET Core on the tailnet, "client" fetches it by name with HttpClient over
// HTTP/1.1 and HTTP/2, the status of every node is printed; then an ACL policy lets only
// alice's "client" reach the site, and bob's "observer" is refused at once by web's packet
// filter; everything shuts down. Runs as a normal user: no root, no TUN device; WireGuard runs
// over UDP on 127.0.0.1.
//
//   dotnet run --project samples/QuickStart
//
// Exit codes: 0 success, 1 a MeshNet or HTTP failure (the message says which), 2 timed out.
using System.Net;
using MeshNet;
using MeshNet.Coordination;
using QuickStart;

var hardTimeout = TimeSpan.FromSeconds(90);
using var timeout = new CancellationTokenSource(hardTimeout);
// Should even shutting down hang, the process still ends.
using var watchdog = new Timer(_ =>
{
    Console.Error.WriteLine($"QuickStart: still running after {hardTimeout.TotalSeconds + 15} s; giving up.");
    Environment.Exit(2);
}, null, hardTimeout + TimeSpan.FromSeconds(15), Timeout.InfiniteTimeSpan);

try
{
    await RunAsync(timeout.Token);
    Console.WriteLine("Everything shut down cleanly.");
    return 0;
}
catch (OperationCanceledException) when (timeout.IsCancellationRequested)
{
    Console.Error.WriteLine($"QuickStart: timed out after {hardTimeout.TotalSeconds} s.");
    return 2;
}
catch (MeshException e)
{
    Console.Error.WriteLine($"QuickStart failed: {e.ErrorCode}: {e.Message}");
    return 1;
}
catch (HttpRequestException e)
{
    Console.Error.WriteLine($"QuickStart failed: the HTTP request over the tailnet failed: {e.Message}");
    return 1;
}

static async Task RunAsync(CancellationToken cancellationToken)
{
    // 1. The coordination service, with its SQLite database in a temporary directory (deleted on dispose).
    Console.WriteLine("Starting the coordination service (SQLite in a temporary directory)...");
    await using var control = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions(), cancellationToken);
    var domain = await control.CreateTailnetAsync("quickstart", cancellationToken);
    // Ephemeral keys: the nodes leave the tailnet by themselves. web's key tags it tag:web; the
    // other two belong to users, as a policy names them.
    var webKey = await control.CreateAuthKeyAsync("quickstart", ephemeral: true, tags: ["tag:web"], cancellationToken: cancellationToken);
    var aliceKey = await control.CreateAuthKeyAsync("quickstart", ephemeral: true, user: Alice, cancellationToken: cancellationToken);
    var bobKey = await control.CreateAuthKeyAsync("quickstart", ephemeral: true, user: Bob, cancellationToken: cancellationToken);
    Console.WriteLine($"  {control.Url}, tailnet 'quickstart' ({domain}), ephemeral auth keys for tag:web, {Alice} and {Bob}");

    // 2. Three nodes join the tailnet.
    MeshNodeOptions Options(string name, string authKey) => new()
    {
        ControlUrl = new Uri(control.Url),
        AuthKey = authKey,
        Hostname = name,
        BindAddress = IPAddress.Loopback, // WireGuard over UDP on 127.0.0.1: works on any machine
    };
    await using var web = await MeshNode.StartAsync(Options("web", webKey), cancellationToken);
    await using var client = await MeshNode.StartAsync(Options("client", aliceKey), cancellationToken);
    await using var observer = await MeshNode.StartAsync(Options("observer", bobKey), cancellationToken);
    MeshNode[] nodes = [web, client, observer];
    foreach (var node in nodes)
    {
        Console.WriteLine($"  joined: {node.Fqdn} {string.Join(", ", node.Addresses)}");
    }
    await WaitForFullMeshAsync(nodes, cancellationToken);

    // 3. "web" serves a page with ASP.NET Core on ports 80 (HTTP/1.1) and 8080 (HTTP/2) of the tailnet, and nowhere else.
    await using var site = await GreetingSite.StartAsync(web, cancellationToken);

    // 4. "client" fetches it by name: the handler dials every connection through the node.
    using var http = new HttpClient(client.CreateHttpMessageHandler())
    {
        Timeout = TimeSpan.FromSeconds(30),
    };
    await FetchAsync(http, "http://web/", HttpVersion.Version11, cancellationToken);
    await FetchAsync(http, $"http://web:{GreetingSite.Http2Port}/", HttpVersion.Version20, cancellationToken);

    // 5. The status of every node.
    Console.WriteLine();
    StatusTable.Write(Console.Out, nodes);

    // 6. A policy: only alice may use the site; web may reach everyone (so every node still sees
    // web). The service compiles it and pushes each node only its own rules, as deltas.
    Console.WriteLine();
    Console.WriteLine("Saving an ACL policy: only alice@example.com may reach tag:web on ports 80 and 8080...");
    var saved = System.Diagnostics.Stopwatch.StartNew();
    ulong version = await control.SetPolicyAsync("quickstart", SitePolicy, cancellationToken);
    while (!nodes.All(node => node.GetStatus() is { PolicyEnforced: true } status && status.PolicyVersion >= version))
    {
        await Task.Delay(5, cancellationToken);
    }
    Console.WriteLine($"  policy version {version} enforced by every node {saved.Elapsed.TotalMilliseconds:0} ms after the save");
    await FetchAsync(http, "http://web/", HttpVersion.Version11, cancellationToken);
    using var bobsHttp = new HttpClient(observer.CreateHttpMessageHandler()) { Timeout = TimeSpan.FromSeconds(30) };
    Console.WriteLine();
    Console.WriteLine("observer: GET http://web/ (HTTP/1.1)");
    var refused = System.Diagnostics.Stopwatch.StartNew();
    try
    {
        using var response = await bobsHttp.GetAsync("http://web/", cancellationToken);
        throw new InvalidOperationException($"observer was let in ({(int)response.StatusCode}) although the policy denies it.");
    }
    catch (HttpRequestException e) when (e.InnerException is MeshException { ErrorCode: MeshErrorCode.PolicyDenied } denied)
    {
        Console.WriteLine($"observer: refused after {refused.Elapsed.TotalMilliseconds:0} ms: {denied.ErrorCode}: {denied.Message}");
    }
    Console.WriteLine($"web: {web.GetStatus().PacketsDeniedByPolicy} packet(s) denied by the policy");

    // 7. Shutting down: disposal (in reverse order) stops the app, the nodes and the service.
    Console.WriteLine();
    Console.WriteLine("Shutting down...");
}

static async Task FetchAsync(HttpClient http, string url, Version version, CancellationToken cancellationToken)
{
    Console.WriteLine();
    Console.WriteLine($"client: GET {url} (HTTP/{version})");
    // HTTP/2 without TLS: prior knowledge (h2c), so the version is asked for exactly.
    using var request = new HttpRequestMessage(HttpMethod.Get, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
    using var response = await http.SendAsync(request, cancellationToken);
    var page = await response.Content.ReadAsStringAsync(cancellationToken);
    Console.WriteLine($"client: {(int)response.StatusCode} {response.ReasonPhrase}, HTTP/{response.Version}, {page.Length} bytes:");
    Console.WriteLine($"  {page}");
    response.EnsureSuccessStatusCode();
}

static async Task WaitForFullMeshAsync(MeshNode[] nodes, CancellationToken cancellationToken)
{
    // A node answers a peer's WireGuard handshake once its netmap has that peer.
    while (!nodes.All(node => node.GetStatus().Peers.Count(peer => peer.Online) == nodes.Length - 1))
    {
        await Task.Delay(20, cancellationToken);
    }
}

/// <summary>The QuickStart's users and policy.</summary>
internal partial class Program
{
    private const string Alice = "alice@example.com";
    private const string Bob = "bob@example.com";

    // HuJSON: comments and trailing commas are allowed. The tests run before the policy is saved.
    private const string SitePolicy = """
        {
          "tagOwners": { "tag:web": ["admin@example.com"] },
          "acls": [
            // alice's devices may use the site, over HTTP/1.1 (80) and HTTP/2 (8080).
            { "action": "accept", "src": ["alice@example.com"], "dst": ["tag:web:80,8080"] },
            // web may reach every node (and so every node sees web).
            { "action": "accept", "src": ["tag:web"], "dst": ["*:*"] },
          ],
          "tests": [
            { "src": "alice@example.com", "accept": ["tag:web:80", "tag:web:8080"] },
            { "src": "bob@example.com", "deny": ["tag:web:80"] },
          ],
        }
        """;
}
