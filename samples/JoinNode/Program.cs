// Joins a tailnet from this process, prints the node's status, and optionally serves an echo
// or dials one. Settings come from the environment:
//
//   MESHNET_CONTROL_URL   the coordinator (required), e.g. http://127.0.0.1:8080; several servers of
//                         one deployment comma-separated (the first is tried first)
//   MESHNET_AUTH_KEY      an auth key (needed to join; not once the state file holds a registration)
//   MESHNET_HOSTNAME      the node's name (default: the machine name)
//   MESHNET_STATE_FILE    keeps the node's identity between runs (default: none, a new node each run)
//   MESHNET_BIND_ADDRESS  the local address of the WireGuard socket (default: every address)
//   MESHNET_TLS_CA        a PEM certificate to trust for an https coordinator with a private certificate
//
//   join-node                      join, print the status, leave
//   join-node --listen PORT        join and echo every connection on PORT until Ctrl+C
//   join-node --dial HOST:PORT     join, send a line to HOST:PORT, print the reply, leave
//   join-node --get URL            join, fetch URL (http://web/) over the tailnet, print the response, leave
//
// Exit codes: 0 success, 1 a MeshNet or HTTP failure (code and message printed), 2 bad settings.
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MeshNet;

MeshNodeOptions options;
string? listen = null, dial = null, get = null;
try
{
    for (int i = 0; i < args.Length; i++)
    {
        switch (args[i])
        {
            case "--listen" when i + 1 < args.Length:
                listen = args[++i];
                break;
            case "--dial" when i + 1 < args.Length:
                dial = args[++i];
                break;
            case "--get" when i + 1 < args.Length:
                get = args[++i];
                break;
            default:
                throw new ArgumentException($"unknown argument '{args[i]}' (use --listen PORT, --dial HOST:PORT or --get URL)");
        }
    }
    options = FromEnvironment();
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"join-node: {e.Message}");
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});

try
{
    await using var node = await MeshNode.StartAsync(options, stop.Token);
    Console.WriteLine($"Joined tailnet {node.Tailnet} as {node.Fqdn} ({string.Join(", ", node.Addresses)})");
    PrintStatus(node);
    if (listen is not null)
    {
        await EchoAsync(node, int.Parse(listen, System.Globalization.CultureInfo.InvariantCulture), stop.Token);
    }
    else if (dial is not null)
    {
        await DialAsync(node, dial, stop.Token);
    }
    else if (get is not null)
    {
        return await GetAsync(node, get, stop.Token);
    }
    return 0;
}
catch (MeshException e)
{
    Console.Error.WriteLine($"join-node: {e.ErrorCode}: {e.Message}");
    return 1;
}
catch (HttpRequestException e)
{
    Console.Error.WriteLine(e.InnerException is MeshException mesh
        ? $"join-node: {mesh.ErrorCode}: {mesh.Message}"
        : $"join-node: the HTTP request failed: {e.Message}");
    return 1;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
    return 0;
}

static MeshNodeOptions FromEnvironment()
{
    string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
    var urls = (Variable("MESHNET_CONTROL_URL") ?? throw new ArgumentException("set MESHNET_CONTROL_URL to the coordinator's URL."))
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(url => Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri : throw new ArgumentException($"MESHNET_CONTROL_URL: '{url}' is not a URL."))
        .ToList();
    if (urls.Count == 0)
    {
        throw new ArgumentException("set MESHNET_CONTROL_URL to the coordinator's URL.");
    }
    var options = new MeshNodeOptions
    {
        ControlUrl = urls[0],
        ControlUrls = urls[1..],
        AuthKey = Variable("MESHNET_AUTH_KEY"),
        Hostname = Variable("MESHNET_HOSTNAME"),
        StateStore = Variable("MESHNET_STATE_FILE") is { } path ? new FileStateStore(path) : null,
        BindAddress = Variable("MESHNET_BIND_ADDRESS") is { } bind ? IPAddress.Parse(bind) : null,
    };
    if (Variable("MESHNET_TLS_CA") is { } caFile)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
        options.ConfigureControlHandler = handler => handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            CustomTrustStore = { ca },
        };
    }
    return options;
}

static void PrintStatus(MeshNode node)
{
    var status = node.GetStatus();
    Console.WriteLine($"Control: {(status.ControlConnected ? "connected" : "disconnected")}; WireGuard port {status.ListenPort}; {status.Peers.Count} peers");
    foreach (var peer in status.Peers)
    {
        Console.WriteLine($"  {peer.Name,-16} {string.Join(", ", peer.Addresses),-44} {(peer.Online ? "online" : "offline")}");
    }
}

static async Task EchoAsync(MeshNode node, int port, CancellationToken cancellationToken)
{
    await using var listener = await node.ListenAsync(port, cancellationToken);
    Console.WriteLine($"Listening on {node.Fqdn}:{listener.Port} (echo); Ctrl+C to stop");
    while (true)
    {
        var connection = await listener.AcceptAsync(cancellationToken);
        _ = Task.Run(async () =>
        {
            await using (connection)
            {
                Console.WriteLine($"Connection from {connection.Peer.Name} ({connection.RemoteEndPoint})");
                try
                {
                    await connection.CopyToAsync(connection, cancellationToken);
                    await connection.ShutdownWriteAsync(cancellationToken);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    Console.WriteLine($"Connection from {connection.Peer.Name} ended: {e.Message}");
                }
            }
        }, CancellationToken.None);
    }
}

static async Task DialAsync(MeshNode node, string target, CancellationToken cancellationToken)
{
    int colon = target.LastIndexOf(':');
    if (colon <= 0 || !int.TryParse(target[(colon + 1)..], out int port))
    {
        throw new MeshException(MeshErrorCode.InvalidConfiguration, $"--dial needs HOST:PORT, not '{target}'.");
    }
    var host = target[..colon].Trim('[', ']');
    await WaitForPeerAsync(node, host, cancellationToken);
    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    timeout.CancelAfter(TimeSpan.FromSeconds(60));
    await using var connection = await node.DialAsync(host, port, timeout.Token);
    var message = $"hello from {node.Name}";
    await connection.WriteAsync(Encoding.UTF8.GetBytes(message + "\n"), timeout.Token);
    await connection.ShutdownWriteAsync(timeout.Token);
    using var reader = new StreamReader(connection, Encoding.UTF8);
    var reply = await reader.ReadToEndAsync(timeout.Token);
    Console.WriteLine($"Reply from {connection.Peer.Name} ({connection.RemoteEndPoint}): {reply.TrimEnd('\n')}");
}

static async Task<int> GetAsync(MeshNode node, string url, CancellationToken cancellationToken)
{
    if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
    {
        throw new MeshException(MeshErrorCode.InvalidConfiguration, $"--get needs an http:// URL, not '{url}'.");
    }
    await WaitForPeerAsync(node, uri.Host.Trim('[', ']'), cancellationToken);
    // Every connection of this client is dialed through the node: http://web/ names a node of the tailnet.
    using var http = new HttpClient(node.CreateHttpMessageHandler()) { Timeout = TimeSpan.FromSeconds(60) };
    using var response = await http.GetAsync(uri, cancellationToken);
    var body = await response.Content.ReadAsStringAsync(cancellationToken);
    Console.WriteLine($"Response from {uri.Host} ({(int)response.StatusCode} {response.ReasonPhrase}, HTTP/{response.Version}): {body.TrimEnd('\n')}");
    return response.IsSuccessStatusCode ? 0 : 1;
}

static async Task WaitForPeerAsync(MeshNode node, string host, CancellationToken cancellationToken)
{
    // A peer that joined a moment ago may not be in this node's netmap yet: give it a little time.
    var deadline = DateTime.UtcNow.AddSeconds(30);
    while (!IPAddress.TryParse(host, out _) && !node.GetStatus().Peers.Any(peer => peer.Name == host || peer.Identity.Fqdn == host.TrimEnd('.'))
        && DateTime.UtcNow < deadline)
    {
        await Task.Delay(100, cancellationToken);
    }
}
