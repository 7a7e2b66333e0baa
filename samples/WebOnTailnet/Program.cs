// An ASP.NET Core minimal-API app that serves only on a MeshNet tailnet: it joins as a node,
// listens on the node's tailnet addresses (no ordinary socket at all), and greets each caller by
// the name of its node, which the tailnet authenticates. Settings come from the environment, as
// for samples/JoinNode:
//
//   MESHNET_CONTROL_URL   the coordinator (required), e.g. http://127.0.0.1:8080
//   MESHNET_AUTH_KEY      an auth key (needed to join; not once the state file holds a registration)
//   MESHNET_HOSTNAME      the node's name (default: web)
//   MESHNET_PORT          the TCP port on the tailnet (default: 80)
//   MESHNET_STATE_FILE    keeps the node's identity between runs (default: none, a new node each run)
//   MESHNET_BIND_ADDRESS  the local address of the WireGuard socket (default: every address)
//   MESHNET_TLS_CA        a PEM certificate to trust for an https coordinator with a private certificate
//
// Runs until Ctrl+C or SIGTERM. Exit codes: 0 stopped, 1 a MeshNet failure (code and message
// printed), 2 bad settings.
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using MeshNet;
using MeshNet.AspNetCore;

MeshNodeOptions options;
int port;
try
{
    (options, port) = FromEnvironment();
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"web-on-tailnet: {e.Message}");
    return 2;
}

try
{
    await using var node = await MeshNode.StartAsync(options);
    Console.WriteLine($"Joined tailnet {node.Tailnet} as {node.Fqdn} ({string.Join(", ", node.Addresses)})");

    var builder = WebApplication.CreateBuilder(args);
    builder.Logging.SetMinimumLevel(LogLevel.Warning);
    builder.WebHost.UseMeshNet(node);
    // Only a tailnet endpoint: Kestrel adds no default localhost one, and ignores ASPNETCORE_URLS.
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenMesh(port));
    await using var app = builder.Build();

    app.MapGet("/", (HttpContext context) =>
    {
        // Every request here came over the tailnet, so it has a peer.
        var peer = context.GetMeshPeer()!;
        Console.WriteLine($"{context.Request.Method} {context.Request.Path} {context.Request.Protocol} from {peer.Name} ({peer.Addresses[0]})");
        return $"Hello, {peer.Name}!\n";
    });

    await app.StartAsync();
    // What Kestrel listens on: the tailnet endpoint and nothing else.
    Console.WriteLine($"Kestrel listens on: {string.Join(", ", app.Urls)}");
    Console.WriteLine($"Serving http://{node.Fqdn}:{port}/ on the tailnet only; Ctrl+C to stop");
    await app.WaitForShutdownAsync();
    Console.WriteLine("Stopped.");
    return 0;
}
catch (MeshException e)
{
    Console.Error.WriteLine($"web-on-tailnet: {e.ErrorCode}: {e.Message}");
    return 1;
}

static (MeshNodeOptions Options, int Port) FromEnvironment()
{
    string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;
    var url = Variable("MESHNET_CONTROL_URL")
        ?? throw new ArgumentException("set MESHNET_CONTROL_URL to the coordinator's URL (for example http://127.0.0.1:8080).");
    var stateFile = Variable("MESHNET_STATE_FILE");
    var authKey = Variable("MESHNET_AUTH_KEY");
    if (authKey is null && (stateFile is null || !File.Exists(stateFile)))
    {
        throw new ArgumentException("set MESHNET_AUTH_KEY to an auth key of the tailnet (needed to join; a MESHNET_STATE_FILE of an earlier run replaces it).");
    }
    int port = 80;
    if (Variable("MESHNET_PORT") is { } portText
        && (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535))
    {
        throw new ArgumentException($"MESHNET_PORT '{portText}' is not a TCP port (1-65535).");
    }
    var options = new MeshNodeOptions
    {
        ControlUrl = Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri : throw new ArgumentException($"MESHNET_CONTROL_URL '{url}' is not a URL."),
        AuthKey = authKey,
        Hostname = Variable("MESHNET_HOSTNAME") ?? "web",
        StateStore = stateFile is null ? null : new FileStateStore(stateFile),
        BindAddress = Variable("MESHNET_BIND_ADDRESS") is { } bind
            ? IPAddress.TryParse(bind, out var address) ? address : throw new ArgumentException($"MESHNET_BIND_ADDRESS '{bind}' is not an IP address.")
            : null,
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
    return (options, port);
}
