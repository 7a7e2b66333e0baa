using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Coordination.Registry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using AdminApi = MeshNet.Control.V1.Admin;
using ControlApi = MeshNet.Control.V1.Control;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>
/// An embedded coordination server on loopback with a fake clock, a real gRPC channel to it,
/// and helpers to make tailnets, keys and signed node clients.
/// </summary>
internal sealed class CoordinationHarness : IAsyncDisposable
{
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly List<NodeClient> _nodes = [];

    private CoordinationHarness(EmbeddedCoordinationServer server, FakeTimeProvider clock, GrpcChannel channel, byte[] serverKey)
    {
        Server = server;
        Clock = clock;
        Channel = channel;
        ServerKey = serverKey;
    }

    public EmbeddedCoordinationServer Server { get; }

    public FakeTimeProvider Clock { get; }

    public GrpcChannel Channel { get; }

    public byte[] ServerKey { get; }

    public static async Task<CoordinationHarness> StartAsync(Action<CoordinationOptions>? configure = null, string? dataDirectory = null,
        FakeTimeProvider? clock = null)
    {
        clock ??= new FakeTimeProvider(Epoch);
        var server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions
        {
            TimeProvider = clock,
            DataDirectory = dataDirectory,
            Configure = configure,
        });
        var channel = GrpcChannel.ForAddress(server.Url);
        var info = await new ControlApi.ControlClient(channel).GetServerInfoAsync(new GetServerInfoRequest());
        return new CoordinationHarness(server, clock, channel, info.ServerKey.ToByteArray());
    }

    public NodeClient NewNode(TestNode? node = null)
    {
        var client = new NodeClient(Channel, ServerKey, Clock, node);
        _nodes.Add(client);
        return client;
    }

    /// <summary>A new node registered with <paramref name="authKey"/>.</summary>
    public async Task<(NodeClient Client, RegisterResponse Response)> JoinAsync(string authKey, string hostname = "host")
    {
        var client = NewNode();
        return (client, await client.RegisterAsync(authKey, hostname));
    }

    /// <summary>A tailnet with one reusable auth key.</summary>
    public async Task<string> TailnetWithKeyAsync(string name)
    {
        await Server.CreateTailnetAsync(name);
        return await Server.CreateAuthKeyAsync(name, reusable: true);
    }

    public AdminApi.AdminClient Admin => new(Channel);

    public Metadata AdminHeaders(string? token = null) => new() { { "authorization", $"Bearer {token ?? Server.AdminToken}" } };

    public Task RunMaintenanceAsync() => Server.Services.GetRequiredService<NodeLifecycle>().RunMaintenanceAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }
        Channel.Dispose();
        await Server.DisposeAsync();
    }
}
