using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using AdminApi = MeshNet.Control.V1.Admin;

namespace Coordinator;

/// <summary>The admin subcommands: Admin gRPC calls with the token from MESHNET_ADMIN_TOKEN.</summary>
internal static class AdminCommands
{
    private static readonly string[] Commands = ["create-tailnet", "create-authkey", "list-nodes", "set-policy"];

    public static bool IsCommand(string name) => Commands.Contains(name) || ClusterCommands.IsCommand(name);

    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("MESHNET_")
            .Build();
        try
        {
            var options = CommandLine.Parse(args[1..]);
            var token = CoordinatorSettings.Get(configuration, "AdminToken", "ADMIN_TOKEN")
                ?? throw new InvalidOperationException("set MESHNET_ADMIN_TOKEN to the coordinator's admin token.");
            var server = options.Value("server") ?? CoordinatorSettings.Get(configuration, "ServerUrl", "SERVER_URL") ?? DefaultServer(configuration);
            using var channel = GrpcChannel.ForAddress(server, new GrpcChannelOptions { HttpHandler = Handler(configuration), DisposeHttpClient = true });
            var admin = new AdminApi.AdminClient(channel);
            var headers = new Metadata { { "authorization", $"Bearer {token}" } };
            if (ClusterCommands.IsCommand(args[0]))
            {
                return await ClusterCommands.RunAsync(args[0], options, admin, headers);
            }
            switch (args[0])
            {
                case "create-tailnet":
                    var request = new CreateTailnetRequest { Name = options.Positional("NAME"), Domain = options.Value("domain") ?? "" };
                    if (options.Value("key-lifetime") is { } keyLifetime)
                    {
                        request.NodeKeyLifetime = Duration.FromTimeSpan(CommandLine.ParseDuration(keyLifetime));
                    }
                    var tailnet = await admin.CreateTailnetAsync(request, headers);
                    Console.WriteLine($"Created tailnet {tailnet.Name} (domain {tailnet.Domain}, node keys valid {tailnet.NodeKeyLifetime.ToTimeSpan().TotalDays:0.#} days)");
                    return 0;
                case "create-authkey":
                    var keyRequest = new CreateAuthKeyRequest
                    {
                        Tailnet = options.Required("tailnet"),
                        Reusable = options.Flag("reusable"),
                        Ephemeral = options.Flag("ephemeral"),
                        Description = options.Value("description") ?? "",
                    };
                    keyRequest.Tags.Add(options.Values("tag"));
                    if (options.Value("lifetime") is { } lifetime)
                    {
                        keyRequest.Lifetime = Duration.FromTimeSpan(CommandLine.ParseDuration(lifetime));
                    }
                    var created = await admin.CreateAuthKeyAsync(keyRequest, headers);
                    var key = created.Key;
                    Console.Error.WriteLine($"Auth key {key.Id} for tailnet {key.Tailnet}: {(key.Reusable ? "reusable" : "one-off")}" +
                        $"{(key.Ephemeral ? ", ephemeral" : "")}{(key.Tags.Count > 0 ? ", tags " + string.Join(' ', key.Tags) : "")}, expires {key.Expires.ToDateTimeOffset():u}");
                    Console.WriteLine(created.Secret);
                    return 0;
                case "list-nodes":
                    var nodes = await admin.ListNodesAsync(new ListNodesRequest { Tailnet = options.Required("tailnet") }, headers);
                    Console.WriteLine($"{"id",-5} {"name",-16} {"addresses",-44} {"online",-7} {"last seen",-20} tags");
                    foreach (var node in nodes.Nodes)
                    {
                        var lastSeen = node.LastSeen is null ? "-" : node.LastSeen.ToDateTimeOffset().ToString("u", CultureInfo.InvariantCulture);
                        Console.WriteLine($"{node.Id,-5} {node.Name,-16} {string.Join(", ", node.Addresses),-44} {(node.Online ? "yes" : "no"),-7} {lastSeen,-20} {string.Join(' ', node.Tags)}");
                    }
                    return 0;
                case "set-policy":
                    var file = options.Required("file");
                    var saved = await admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = options.Required("tailnet"), Policy = File.ReadAllText(file) },
                        headers);
                    Console.WriteLine($"Policy saved as version {saved.Version}; {saved.NodesAffected} nodes affected");
                    return 0;
                default:
                    throw new InvalidOperationException($"unknown command {args[0]}");
            }
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"coordinator {args[0]}: {e.Message}");
            return 2;
        }
        catch (RpcException e)
        {
            Console.Error.WriteLine($"coordinator {args[0]}: {e.StatusCode}: {e.Status.Detail}");
            return 1;
        }
    }

    private static string DefaultServer(IConfiguration configuration)
    {
        var first = (CoordinatorSettings.Get(configuration, "Urls", "URLS") ?? CoordinatorSettings.DefaultUrl).Split(';')[0].Trim();
        return first.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "[::1]", StringComparison.Ordinal);
    }

    /// <summary>The HTTP handler: trusts MESHNET_TLS_CA (instead of the system's roots) when it is set.</summary>
    internal static SocketsHttpHandler Handler(IConfiguration configuration)
    {
        var handler = new SocketsHttpHandler();
        if (CoordinatorSettings.Get(configuration, "TlsCa", "TLS_CA") is { } caFile)
        {
            var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
            handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca },
            };
        }
        return handler;
    }
}
