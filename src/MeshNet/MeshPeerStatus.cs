using System.Net;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>One peer in a <see cref="MeshNodeStatus"/>: what the netmap says about it and what the WireGuard device measured.</summary>
public sealed class MeshPeerStatus
{
    internal MeshPeerStatus()
    {
    }

    /// <summary>The peer's identity (id, names, addresses, tags, key).</summary>
    public required MeshPeerIdentity Identity { get; init; }

    /// <summary>Whether the coordination service considers the peer connected to it.</summary>
    public bool Online { get; init; }

    /// <summary>Whether the peer is configured in the WireGuard device (false when its key expired or its record is unusable).</summary>
    public bool Configured { get; init; }

    /// <summary>Where packets to the peer go now (the advertised endpoint, or where the peer last sent from), or null.</summary>
    public IPEndPoint? Endpoint { get; init; }

    /// <summary>The endpoints the peer advertises, most preferred first.</summary>
    public IReadOnlyList<IPEndPoint> AdvertisedEndpoints { get; init; } = [];

    /// <summary>When the last WireGuard handshake with the peer completed, or null.</summary>
    public DateTimeOffset? LastHandshake { get; init; }

    /// <summary>Bytes received from the peer (WireGuard messages).</summary>
    public long BytesReceived { get; init; }

    /// <summary>Bytes sent to the peer (WireGuard messages).</summary>
    public long BytesSent { get; init; }

    /// <summary>When the peer's key expires, or null when it does not.</summary>
    public DateTimeOffset? KeyExpiry { get; init; }

    /// <summary>When the service last saw the peer, or null.</summary>
    public DateTimeOffset? LastSeen { get; init; }

    /// <summary>The peer's id in its tailnet (the same as <c>Identity.NodeId</c>).</summary>
    public ulong NodeId => Identity.NodeId;

    /// <summary>The peer's DNS label.</summary>
    public string Name => Identity.Name;

    /// <summary>The peer's tailnet addresses.</summary>
    public IReadOnlyList<IPAddress> Addresses => Identity.Addresses;

    /// <summary>The peer's public key.</summary>
    public WireGuardPublicKey? PublicKey => Identity.PublicKey;

    /// <summary>A one-line summary.</summary>
    public override string ToString() =>
        $"{Name} {string.Join(", ", Addresses)} {(Online ? "online" : "offline")} endpoint {Endpoint?.ToString() ?? "none"} rx {BytesReceived} tx {BytesSent}";
}
