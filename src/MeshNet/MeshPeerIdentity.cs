using System.Net;
using MeshNet.Netmap;
using MeshNet.Userspace.Crypto;

namespace MeshNet;

/// <summary>
/// Who is at the other end of a connection: a node of the tailnet as the coordination service
/// describes it, looked up by the remote address when the connection was accepted or dialed.
/// The address is authenticated: WireGuard only accepts packets from an address out of the
/// peer whose key encrypted them (cryptokey routing). Immutable.
/// </summary>
public sealed class MeshPeerIdentity
{
    internal MeshPeerIdentity(ulong nodeId, string name, string fqdn, IReadOnlyList<IPAddress> addresses,
        IReadOnlyList<string> tags, WireGuardPublicKey? publicKey, string user = "")
    {
        User = user;
        NodeId = nodeId;
        Name = name;
        Fqdn = fqdn;
        Addresses = addresses;
        Tags = tags;
        PublicKey = publicKey;
    }

    /// <summary>The node's id in its tailnet.</summary>
    public ulong NodeId { get; }

    /// <summary>The node's DNS label (for example <c>web</c>).</summary>
    public string Name { get; }

    /// <summary>The node's fully qualified name (for example <c>web.acme.meshnet.internal</c>).</summary>
    public string Fqdn { get; }

    /// <summary>The node's tailnet addresses, IPv4 first.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; }

    /// <summary>The node's tags (for example <c>tag:web</c>).</summary>
    public IReadOnlyList<string> Tags { get; }

    /// <summary>
    /// The user the node belongs to (as the tailnet policy names users, for example
    /// <c>alice@example.com</c>); empty for tagged nodes, which belong to no user.
    /// </summary>
    public string User { get; }

    /// <summary>The node's WireGuard public key (null when the service sent an invalid one).</summary>
    public WireGuardPublicKey? PublicKey { get; }

    /// <summary>True when the node has <paramref name="tag"/> (ordinal comparison).</summary>
    public bool HasTag(string tag) => Tags.Contains(tag, StringComparer.Ordinal);

    internal static MeshPeerIdentity From(NetmapSnapshot map, NetmapNode node) =>
        new(node.Id, node.Name, map.FqdnOf(node), NameResolver.OrderedAddresses(node), [.. node.Tags], node.Key, node.User);

    /// <summary>The name and addresses.</summary>
    public override string ToString() => $"{Fqdn} ({string.Join(", ", Addresses)})";
}
