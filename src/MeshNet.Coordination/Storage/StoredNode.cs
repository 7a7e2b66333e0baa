using System.Net;

namespace MeshNet.Coordination.Storage;

/// <summary>
/// A node as stored. Byte arrays and lists compare by reference in the record's equality. The
/// live part (<see cref="Online"/>, <see cref="Endpoints"/>, <see cref="Instance"/>,
/// <see cref="LastSeen"/>) is written by the tailnet's owner in batches
/// (<see cref="ICoordinationStore.UpdateLiveStateAsync"/>), the rest by the writes that change it.
/// </summary>
/// <param name="Id">Unique across the server, assigned by the store, never reused.</param>
/// <param name="Tailnet">The tailnet it belongs to.</param>
/// <param name="NodeKey">The node's current 32-byte public key; unique across the server.</param>
/// <param name="Name">Its DNS label, unique in the tailnet.</param>
/// <param name="Hostname">The host name it last reported.</param>
/// <param name="IPv4">Its address in 100.64.0.0/10, unique in the tailnet, kept forever.</param>
/// <param name="IPv6">Its address in fd7a:115c:a1e0::/48, unique in the tailnet, kept forever.</param>
/// <param name="Tags">Its tags.</param>
/// <param name="Ephemeral">Removed after being offline for a while.</param>
/// <param name="KeyExpiry">When its node key expires.</param>
/// <param name="Created">When it first registered.</param>
/// <param name="LastSeen">When its last map stream ended (null: never connected).</param>
/// <param name="AuthKeyId">The auth key it registered with.</param>
/// <param name="User">The user it belongs to (its auth key's user; empty when the key had none).</param>
public sealed record StoredNode(
    ulong Id,
    string Tailnet,
    byte[] NodeKey,
    string Name,
    string Hostname,
    IPAddress IPv4,
    IPAddress IPv6,
    IReadOnlyList<string> Tags,
    bool Ephemeral,
    DateTimeOffset KeyExpiry,
    DateTimeOffset Created,
    DateTimeOffset? LastSeen,
    string? AuthKeyId,
    string User = "")
{
    /// <summary>True while the node has a map stream on the tailnet's owner.</summary>
    public bool Online { get; init; }

    /// <summary>The node's WireGuard endpoints, most preferred first.</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>The id of the node's current run (empty: unknown).</summary>
    public string Instance { get; init; } = "";

    /// <summary>The tailnet revision of the last write that changed this node (0: none since the schema had revisions).</summary>
    public ulong Revision { get; init; }

    /// <summary>
    /// The tailnet revision of the last write that changed what the policy matches on this node
    /// (its tags; set when it joined).
    /// </summary>
    public ulong TagsRevision { get; init; }
}
