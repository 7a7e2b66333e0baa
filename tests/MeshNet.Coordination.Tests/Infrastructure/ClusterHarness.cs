using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using AdminApi = MeshNet.Control.V1.Admin;
using ControlApi = MeshNet.Control.V1.Control;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>
/// Several coordination servers in this process sharing one SQLite database (a deployment of
/// several servers, as on PostgreSQL, with short leases on the real clock), with a channel to
/// each and helpers to join nodes at a given server.
/// </summary>
internal sealed class ClusterHarness : IAsyncDisposable
{
    public const string AdminToken = "cluster-harness-admin-token";

    private readonly TempDirectory _directory = new();
    private readonly List<NodeClient> _nodes = [];
    private readonly Action<CoordinationOptions>? _configure;

    private ClusterHarness(Action<CoordinationOptions>? configure) => _configure = configure;

    public List<EmbeddedCoordinationServer> Servers { get; } = [];

    public List<GrpcChannel> Channels { get; } = [];

    public byte[] ServerKey { get; private set; } = [];

    public static async Task<ClusterHarness> StartAsync(int servers, Action<CoordinationOptions>? configure = null)
    {
        var harness = new ClusterHarness(configure);
        try
        {
            for (int i = 0; i < servers; i++)
            {
                await harness.AddServerAsync();
            }
            var info = await new ControlApi.ControlClient(harness.Channels[0]).GetServerInfoAsync(new GetServerInfoRequest());
            harness.ServerKey = info.ServerKey.ToByteArray();
            return harness;
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts one more server (id s1, s2, ... by position).</summary>
    public async Task<EmbeddedCoordinationServer> AddServerAsync()
    {
        string id = $"s{Servers.Count + 1}";
        var server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions
        {
            DataDirectory = _directory.Path,
            AdminToken = AdminToken,
            Configure = options =>
            {
                options.ServerId = id;
                options.LeaseTtl = TimeSpan.FromSeconds(3);
                options.LeaseRenewInterval = TimeSpan.FromMilliseconds(300);
                options.LeaseSafetyMargin = TimeSpan.FromMilliseconds(250);
                options.LeaseClaimInterval = TimeSpan.FromMilliseconds(50);
                options.MaintenanceInterval = TimeSpan.FromMilliseconds(200);
                _configure?.Invoke(options);
            },
        });
        Servers.Add(server);
        Channels.Add(GrpcChannel.ForAddress(server.Url));
        return server;
    }

    public AdminApi.AdminClient Admin(int server) => new(Channels[server]);

    public static Metadata AdminHeaders(string? idempotencyKey = null)
    {
        var headers = new Metadata { { "authorization", $"Bearer {AdminToken}" } };
        if (idempotencyKey is not null)
        {
            headers.Add(Protocol.ControlErrors.IdempotencyKeyHeader, idempotencyKey);
        }
        return headers;
    }

    /// <summary>A node client whose calls go to <paramref name="server"/>.</summary>
    public NodeClient NewNode(int server, TestNode? node = null)
    {
        var client = new NodeClient(Channels[server], ServerKey, TimeProvider.System, node);
        _nodes.Add(client);
        return client;
    }

    /// <summary>The same node's client on another server.</summary>
    public NodeClient At(NodeClient node, int server) => NewNode(server, node.Node);

    /// <summary>Index of the server with that URL.</summary>
    public int IndexOf(string url) => Servers.FindIndex(server => server.Url == url.TrimEnd('/'));

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }
        foreach (var channel in Channels)
        {
            channel.Dispose();
        }
        foreach (var server in Servers)
        {
            await server.DisposeAsync();
        }
        _directory.Dispose();
    }
}
