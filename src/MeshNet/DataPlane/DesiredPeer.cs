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
/// <param name="Instance">The peer's run id (empty when unknown): a new one means it restarted.</param>
internal sealed record DesiredPeer(WireGuardPublicKey Key, ulong NodeId, IPEndPoint? Endpoint, ImmutableArray<IPNetwork> AllowedIps, string Instance = "")
{
    /// <summary>True when applying this instead of <paramref name="other"/> would change nothing on the device.</summary>
    public bool SameConfigAs(DesiredPeer other) =>
        Key.Equals(other.Key) && Equals(Endpoint, other.Endpoint) && AllowedIps.SequenceEqual(other.AllowedIps)
        && string.Equals(Instance, other.Instance, StringComparison.Ordinal);

    /// <summary>True when the peer restarted since <paramref name="before"/> (both run ids known and different): its sessions are gone.</summary>
    public bool RestartedSince(DesiredPeer before) =>
        Instance.Length > 0 && before.Instance.Length > 0 && !string.Equals(Instance, before.Instance, StringComparison.Ordinal);

    public WireGuardPeerConfig ToConfig() => new(Key)
    {
        Endpoint = Endpoint,
        AllowedIps = AllowedIps,
    };
}
