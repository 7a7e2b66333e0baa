using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using ControlApi = MeshNet.Control.V1.Control;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>A node's control client: every call signed with the node's key on the given clock (tests only).</summary>
internal sealed class NodeClient : IDisposable
{
    private readonly byte[] _serverKey;
    private readonly TimeProvider _clock;

    public NodeClient(GrpcChannel channel, byte[] serverKey, TimeProvider clock, TestNode? node = null)
    {
        Client = new ControlApi.ControlClient(channel);
        _serverKey = serverKey;
        _clock = clock;
        _ownsNode = node is null;
        Node = node ?? TestNode.Create();
    }

    private readonly bool _ownsNode;

    public ControlApi.ControlClient Client { get; }

    public TestNode Node { get; }

    public long Now => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    public Metadata Sign(string method, Google.Protobuf.IMessage request) => Node.Sign(_serverKey, method, request, Now);

    public RegisterRequest RegisterRequest(string? authKey, string hostname = "host") =>
        new() { NodeKey = Node.PublicKeyBytes, AuthKey = authKey ?? "", Hostname = hostname };

    public async Task<RegisterResponse> RegisterAsync(string? authKey, string hostname = "host", bool ephemeral = false, params string[] tags)
    {
        var request = RegisterRequest(authKey, hostname);
        request.Ephemeral = ephemeral;
        request.RequestedTags.Add(tags);
        return await RegisterAsync(request);
    }

    public async Task<RegisterResponse> RegisterAsync(RegisterRequest request) =>
        await Client.RegisterAsync(request, Sign("Register", request), deadline: Deadline());

    /// <summary>Rotates from this client's key to <paramref name="newNode"/>'s; returns the client of the new key.</summary>
    public async Task<(NodeClient Client, RegisterResponse Response)> RotateAsync(TestNode newNode, GrpcChannel channel, string hostname = "host",
        string? authKey = null)
    {
        var rotated = new NodeClient(channel, _serverKey, _clock, newNode);
        var request = rotated.RegisterRequest(authKey, hostname);
        request.OldNodeKey = Node.PublicKeyBytes;
        request.OldNodeKeyProof = Node.RotationProof(_serverKey, newNode);
        return (rotated, await rotated.RegisterAsync(request));
    }

    public MapStreamReader Map(string session = "", ulong lastSequence = 0, params string[] endpoints) => Map(session, lastSequence, 0, endpoints);

    /// <summary>Opens a map stream resuming from a session, its last sequence and the tailnet revision last applied.</summary>
    public MapStreamReader Map(string session, ulong lastSequence, ulong lastRevision, params string[] endpoints)
    {
        var request = new MapRequest { NodeKey = Node.PublicKeyBytes, Session = session, LastSequence = lastSequence, LastRevision = lastRevision };
        request.Endpoints.Add(endpoints);
        return new MapStreamReader(Client.Map(request, Sign("Map", request)));
    }

    public async Task UpdateEndpointsAsync(params string[] endpoints)
    {
        var request = new UpdateEndpointsRequest { NodeKey = Node.PublicKeyBytes };
        request.Endpoints.Add(endpoints);
        await Client.UpdateEndpointsAsync(request, Sign("UpdateEndpoints", request), deadline: Deadline());
    }

    public void Dispose()
    {
        if (_ownsNode)
        {
            Node.Dispose();
        }
    }

    private static DateTime Deadline() => DateTime.UtcNow.AddSeconds(30);
}
