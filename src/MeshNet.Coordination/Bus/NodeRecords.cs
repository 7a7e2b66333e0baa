using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Bus;

/// <summary>Builds the wire records of nodes from stored ones. Pure; thread-safe.</summary>
internal static class NodeRecords
{
    /// <summary>
    /// The node as peers and admins see it, live state included. Addresses are plain
    /// ("100.64.1.2", "fd7a:115c:a1e0::6440:102"), IPv4 first.
    /// </summary>
    public static Node ToProto(StoredNode node)
    {
        var record = new Node
        {
            Id = node.Id,
            NodeKey = ByteString.CopyFrom(node.NodeKey),
            Name = node.Name,
            Hostname = node.Hostname,
            Online = node.Online,
            Instance = node.Instance,
            Ephemeral = node.Ephemeral,
            KeyExpiry = Timestamp.FromDateTimeOffset(node.KeyExpiry),
            Created = Timestamp.FromDateTimeOffset(node.Created),
            User = node.Tags.Count > 0 ? "" : node.User,
        };
        record.Addresses.Add(node.IPv4.ToString());
        record.Addresses.Add(node.IPv6.ToString());
        record.Tags.Add(node.Tags);
        if (node.LastSeen is { } lastSeen)
        {
            record.LastSeen = Timestamp.FromDateTimeOffset(lastSeen);
        }
        record.Endpoints.Add(node.Endpoints);
        return record;
    }
}
