using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Crypto;

namespace MeshNet.DataPlane;

/// <summary>
/// Turns a netmap into the peer set the WireGuard device should hold, and two peer sets into
/// the operations between them. Pure functions; <see cref="PeerConfigurator"/> applies them.
/// </summary>
internal static class PeerPlanner
{
    /// <summary>
    /// The peers to configure: every peer with a valid key (not this node's own), at least one
    /// address, and a key that has not expired at <paramref name="now"/>. The endpoint is the
    /// first advertised one that <paramref name="canReach"/> accepts.
    /// </summary>
    /// <param name="map">The netmap.</param>
    /// <param name="now">The current time (for key expiry).</param>
    /// <param name="canReach">Whether this node's UDP socket can send to an endpoint (its address family).</param>
    /// <param name="nextExpiry">The earliest key expiry after <paramref name="now"/> among the configured peers: when to plan again.</param>
    public static Dictionary<WireGuardPublicKey, DesiredPeer> Desired(Netmap.NetmapSnapshot map, DateTimeOffset now,
        Func<IPEndPoint, bool> canReach, out DateTimeOffset? nextExpiry)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(canReach);
        nextExpiry = null;
        var desired = new Dictionary<WireGuardPublicKey, DesiredPeer>();
        foreach (var peer in map.Peers.Values) // by id: the lowest id wins a (bogus) shared key
        {
            if (peer.Key is null || peer.Key.Equals(map.Self.Key) || peer.Addresses.IsEmpty || peer.IsExpired(now)
                || desired.ContainsKey(peer.Key))
            {
                continue;
            }
            if (peer.KeyExpiry is { } expiry && (nextExpiry is null || expiry < nextExpiry))
            {
                nextExpiry = expiry;
            }
            IPEndPoint? endpoint = null;
            foreach (var candidate in peer.Endpoints)
            {
                if (canReach(candidate))
                {
                    endpoint = candidate;
                    break;
                }
            }
            var allowed = ImmutableArray.CreateBuilder<IPNetwork>(peer.Addresses.Length);
            foreach (var address in peer.Addresses)
            {
                allowed.Add(new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128));
            }
            desired[peer.Key] = new DesiredPeer(peer.Key, peer.Id, endpoint, allowed.MoveToImmutable(), peer.Instance);
        }
        return desired;
    }

    /// <summary>
    /// Keeps what the netmap now leaves unknown for a peer already configured: an endpoint (no
    /// endpoint means "not known right now": a service that just restarted lists every node
    /// without endpoints until each reports again, so the session must not be torn down for it)
    /// and a run id (such a service lists every run id as empty until each node attaches again;
    /// forgetting them would reconfigure every peer twice and miss a restart in between).
    /// </summary>
    public static void KeepKnown(IReadOnlyDictionary<WireGuardPublicKey, DesiredPeer> applied,
        Dictionary<WireGuardPublicKey, DesiredPeer> desired)
    {
        ArgumentNullException.ThrowIfNull(applied);
        ArgumentNullException.ThrowIfNull(desired);
        foreach (var (key, peer) in applied)
        {
            if (!desired.TryGetValue(key, out var wanted))
            {
                continue;
            }
            if (peer.Endpoint is not null && wanted.Endpoint is null)
            {
                wanted = wanted with { Endpoint = peer.Endpoint };
            }
            if (peer.Instance.Length > 0 && wanted.Instance.Length == 0)
            {
                wanted = wanted with { Instance = peer.Instance };
            }
            desired[key] = wanted;
        }
    }

    /// <summary>
    /// The operations from <paramref name="applied"/> to <paramref name="desired"/>: a peer
    /// whose key is no longer desired is removed (a key rotation removes the old key and adds
    /// the new one); a new key is set; a known key is set again only when its endpoint or
    /// addresses changed. Peers that did not change get no operation at all, so their sessions
    /// and connections are never disturbed.
    /// </summary>
    public static PeerPlan Diff(IReadOnlyDictionary<WireGuardPublicKey, DesiredPeer> applied,
        IReadOnlyDictionary<WireGuardPublicKey, DesiredPeer> desired)
    {
        ArgumentNullException.ThrowIfNull(applied);
        ArgumentNullException.ThrowIfNull(desired);
        var remove = new List<WireGuardPublicKey>();
        foreach (var key in applied.Keys)
        {
            if (!desired.ContainsKey(key))
            {
                remove.Add(key);
            }
        }
        var set = new List<DesiredPeer>();
        foreach (var (key, peer) in desired)
        {
            if (!applied.TryGetValue(key, out var current) || !current.SameConfigAs(peer))
            {
                set.Add(peer);
            }
        }
        // Deterministic order (node id), for logs and tests.
        set.Sort((a, b) => a.NodeId.CompareTo(b.NodeId));
        remove.Sort((a, b) => string.CompareOrdinal(a.ToBase64(), b.ToBase64()));
        return new PeerPlan(remove, set);
    }
}
