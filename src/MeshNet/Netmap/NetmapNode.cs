using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Netmap;

/// <summary>
/// One node of a netmap (a peer, or this node itself), parsed from the protocol's
/// <see cref="Node"/>: keys, addresses and endpoints as .NET values, malformed entries dropped.
/// Immutable.
/// </summary>
internal sealed record NetmapNode
{
    public required ulong Id { get; init; }

    /// <summary>The node key, or null when the service sent something that is not a 32-byte key.</summary>
    public required WireGuardPublicKey? Key { get; init; }

    /// <summary>The DNS label, lower case.</summary>
    public required string Name { get; init; }

    public string Hostname { get; init; } = "";

    public ImmutableArray<IPAddress> Addresses { get; init; } = [];

    /// <summary>WireGuard endpoints, most preferred first.</summary>
    public ImmutableArray<IPEndPoint> Endpoints { get; init; } = [];

    public ImmutableArray<string> Tags { get; init; } = [];

    /// <summary>The user the node belongs to; empty for tagged nodes.</summary>
    public string User { get; init; } = "";

    /// <summary>The node's current run id (empty when unknown); a new one means it restarted.</summary>
    public string Instance { get; init; } = "";

    public bool Online { get; init; }

    public bool Ephemeral { get; init; }

    public DateTimeOffset? KeyExpiry { get; init; }

    public DateTimeOffset? LastSeen { get; init; }

    /// <summary>True when the key has an expiry at or before <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => KeyExpiry is { } expiry && expiry <= now;

    /// <summary>The node's first address of a family.</summary>
    public IPAddress? AddressOf(AddressFamily family)
    {
        foreach (var address in Addresses)
        {
            if (address.AddressFamily == family)
            {
                return address;
            }
        }
        return null;
    }

    public static NetmapNode FromProto(Node node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return new NetmapNode
        {
            Id = node.Id,
            Key = ParseKey(node.NodeKey.Span),
            Name = node.Name.ToLowerInvariant(),
            Hostname = node.Hostname,
            Addresses = ParseAddresses(node.Addresses),
            Endpoints = ParseEndpoints(node.Endpoints),
            Tags = [.. node.Tags],
            User = node.User,
            Instance = node.Instance,
            Online = node.Online,
            Ephemeral = node.Ephemeral,
            KeyExpiry = ToTime(node.KeyExpiry),
            LastSeen = ToTime(node.LastSeen),
        };
    }

    /// <summary>The wire record of this node (for the netmap cache); fields that were dropped as malformed stay dropped.</summary>
    public Node ToProto()
    {
        var node = new Node
        {
            Id = Id,
            NodeKey = Key is null ? ByteString.Empty : ByteString.CopyFrom(Key.AsSpan()),
            Name = Name,
            Hostname = Hostname,
            User = User,
            Instance = Instance,
            Online = Online,
            Ephemeral = Ephemeral,
            KeyExpiry = KeyExpiry is { } expiry ? Timestamp.FromDateTimeOffset(expiry) : null,
            LastSeen = LastSeen is { } seen ? Timestamp.FromDateTimeOffset(seen) : null,
        };
        foreach (var address in Addresses)
        {
            node.Addresses.Add(address.ToString());
        }
        foreach (var endpoint in Endpoints)
        {
            node.Endpoints.Add(endpoint.ToString());
        }
        node.Tags.Add(Tags);
        return node;
    }

    public static WireGuardPublicKey? ParseKey(ReadOnlySpan<byte> bytes) =>
        bytes.Length == WireGuardPublicKey.Size && bytes.ContainsAnyExcept((byte)0) ? WireGuardPublicKey.FromBytes(bytes) : null;

    public static ImmutableArray<IPAddress> ParseAddresses(IEnumerable<string> values)
    {
        var builder = ImmutableArray.CreateBuilder<IPAddress>();
        foreach (var value in values)
        {
            if (IPAddress.TryParse(value, out var address) && address.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            {
                builder.Add(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
            }
        }
        return builder.ToImmutable();
    }

    public static ImmutableArray<IPEndPoint> ParseEndpoints(IEnumerable<string> values)
    {
        var builder = ImmutableArray.CreateBuilder<IPEndPoint>();
        foreach (var value in values)
        {
            if (IPEndPoint.TryParse(value, out var endpoint) && endpoint.Port != 0
                && endpoint.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            {
                if (endpoint.Address.IsIPv4MappedToIPv6)
                {
                    endpoint = new IPEndPoint(endpoint.Address.MapToIPv4(), endpoint.Port);
                }
                builder.Add(endpoint);
            }
        }
        return builder.ToImmutable();
    }

    public static DateTimeOffset? ToTime(Timestamp? timestamp) =>
        timestamp is null ? null : timestamp.ToDateTimeOffset();
}
