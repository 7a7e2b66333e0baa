using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Netmap;

namespace MeshNet.Tests.Support;

/// <summary>
/// Real <see cref="MeshNode"/>s on 127.0.0.1 whose netmaps the test writes by hand
/// (<see cref="MeshNode.StartWithoutControlAsync"/>): the data path is the real one (WireGuard
/// over UDP, the userspace stack, listeners, dialing, identity), only the coordination service
/// is left out. Node i has 100.64.0.i, fd7a:115c:a1e0::i and the name given.
/// </summary>
internal sealed class DetachedMesh : IAsyncDisposable
{
    private readonly List<MeshNode> _nodes = [];
    private readonly Dictionary<MeshNode, Node> _records = [];
    private readonly Dictionary<MeshNode, (bool Enforced, ulong Version, FilterChunk[] Chunks)> _filters = [];
    private ulong _sequence = 1;

    public IReadOnlyList<MeshNode> Nodes => _nodes;

    /// <summary>Every node's log.</summary>
    public RecordingLoggerFactory Logs { get; } = new();

    public static Task<DetachedMesh> StartAsync(params (string Name, string[] Tags)[] specs) => StartAsync(null, specs);

    public static async Task<DetachedMesh> StartAsync(Userspace.Stack.TcpStackOptions? tcp, params (string Name, string[] Tags)[] specs)
    {
        var mesh = new DetachedMesh();
        try
        {
            for (int i = 0; i < specs.Length; i++)
            {
                int id = i + 1;
                var identity = MeshNodeIdentity.Generate();
                var record = new Node
                {
                    Id = (ulong)id,
                    NodeKey = ByteString.CopyFrom(identity.PublicKey.AsSpan()),
                    Name = specs[i].Name,
                    Hostname = specs[i].Name,
                    Online = true,
                };
                record.Addresses.Add($"100.64.0.{id}");
                record.Addresses.Add($"fd7a:115c:a1e0::{id:x}");
                record.Tags.Add(specs[i].Tags);
                var options = new MeshNodeOptions
                {
                    ControlUrl = new Uri("http://127.0.0.1:1"),
                    BindAddress = IPAddress.Loopback,
                    LoggerFactory = mesh.Logs,
                    Tcp = tcp,
                };
                var node = await MeshNode.StartWithoutControlAsync(options, identity,
                    NetmapApplier.ApplyFull(TestNodes.Full(record), "detached", 1), "acme");
                mesh._nodes.Add(node);
                record.Endpoints.Add($"127.0.0.1:{node.ListenPort}");
                mesh._records[node] = record;
            }
            mesh.Publish();
            return mesh;
        }
        catch
        {
            await mesh.DisposeAsync();
            throw;
        }
    }

    public MeshNode this[int index] => _nodes[index];

    /// <summary>The record of a node (change it, then <see cref="Publish"/>).</summary>
    public Node Record(MeshNode node) => _records[node];

    /// <summary>Gives every node (or only <paramref name="only"/>) a full netmap of all the others, as the records say.</summary>
    public void Publish(MeshNode? only = null, Func<MeshNode, bool>? includePeer = null)
    {
        _sequence++;
        foreach (var node in _nodes)
        {
            if (only is not null && node != only)
            {
                continue;
            }
            var peers = _nodes.Where(peer => peer != node && (includePeer?.Invoke(peer) ?? true)).Select(peer => _records[peer]).ToArray();
            var full = TestNodes.Full(_records[node], peers);
            if (_filters.TryGetValue(node, out var filter))
            {
                full.Filter.Add(filter.Chunks);
                full.FilterEnforced = filter.Enforced;
                full.PolicyVersion = filter.Version;
            }
            node.ApplyNetmap(NetmapApplier.ApplyFull(full, "detached", _sequence));
        }
    }

    /// <summary>Sets the packet filter a node's netmaps carry (applied by the next <see cref="Publish"/>).</summary>
    public void SetFilter(MeshNode node, bool enforced, ulong version, params FilterChunk[] chunks) => _filters[node] = (enforced, version, chunks);

    /// <summary>Expires a node's key (in the records) at <paramref name="when"/>.</summary>
    public void SetKeyExpiry(MeshNode node, DateTimeOffset when) => _records[node].KeyExpiry = Timestamp.FromDateTimeOffset(when);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
    }
}
