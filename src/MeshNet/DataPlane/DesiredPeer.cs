using System.Collections.Immutable;
using System.Net;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.DataPlane;

/// <summary>What the netmap says the WireGuard device should hold for one peer.</summary>
/// <param name="Key">The peer's public key (the device's identity for it).</param>
/// <param name="NodeId">The peer's node id (for logs).</param>
/// <param name="Endpoint">The first advertised endpoint this node can send to, or null.</param>
/// <param name="AllowedIps">The peer's addresses as /32 and /128 prefixes.</param>
internal sealed record DesiredPeer(WireGuardPublicKey Key, ulong NodeId, IPEndPoint? Endpoint, ImmutableArray<IPNetwork> AllowedIps)
{
    /// <summary>True when applying this instead of <paramref name="other"/> would change nothing on the device.</summary>
    public bool SameConfigAs(DesiredPeer other) =>
        Key.Equals(other.Key) && Equals(Endpoint, other.Endpoint) && AllowedIps.SequenceEqual(other.AllowedIps);

    public WireGuardPeerConfig ToConfig() => new(Key)
    {
        Endpoint = Endpoint,
        AllowedIps = AllowedIps,
    };
}
