using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Netmap;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Tests.Support;

/// <summary>Builds protocol nodes and netmaps for tests: node n has 100.64.0.n, fd7a:115c:a1e0::n and endpoint 192.0.2.n:41641.</summary>
internal static class TestNodes
{
    public static WireGuardPublicKey Key(int seed)
    {
        var bytes = new byte[32];
        bytes[0] = (byte)seed;
        bytes[1] = (byte)(seed >> 8);
        bytes[31] = 0x42;
        return WireGuardPublicKey.FromBytes(bytes);
    }

    public static Node Node(int id, string? name = null, WireGuardPublicKey? key = null, DateTimeOffset? keyExpiry = null, params string[] tags)
    {
        var node = new Node
        {
            Id = (ulong)id,
            NodeKey = ByteString.CopyFrom((key ?? Key(id)).AsSpan()),
            Name = name ?? $"node{id}",
            Hostname = name ?? $"node{id}",
            Online = true,
        };
        node.Addresses.Add($"100.64.0.{id}");
        node.Addresses.Add($"fd7a:115c:a1e0::{id:x}");
        node.Endpoints.Add($"192.0.2.{id}:41641");
        node.Tags.Add(tags);
        if (keyExpiry is { } expiry)
        {
            node.KeyExpiry = Timestamp.FromDateTimeOffset(expiry);
        }
        return node;
    }

    public static FullMap Full(Node self, params Node[] peers)
    {
        var full = new FullMap { Self = self, Domain = "acme.meshnet.internal" };
        full.Peers.Add(peers);
        return full;
    }

    public static NetmapSnapshot Map(Node self, params Node[] peers) => NetmapApplier.ApplyFull(Full(self, peers), "s1", 1);

    public static MapResponse FullMessage(ulong sequence, string session, Node self, params Node[] peers) =>
        new() { Sequence = sequence, Session = session, Full = Full(self, peers) };

    public static MapResponse DeltaMessage(ulong sequence, MapDelta delta, string session = "") =>
        new() { Sequence = sequence, Session = session, Delta = delta };

    public static IPAddress V4(int id) => IPAddress.Parse($"100.64.0.{id}");

    public static IPAddress V6(int id) => IPAddress.Parse($"fd7a:115c:a1e0::{id:x}");
}
