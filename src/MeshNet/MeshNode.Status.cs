using MeshNet.Control;
using MeshNet.State;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;

namespace MeshNet;

/// <summary>Status and health warnings.</summary>
public sealed partial class MeshNode
{
    /// <summary>
    /// A snapshot of the node: itself, its link to the coordination service, and every peer of
    /// the netmap with what the WireGuard device measured (endpoint, last handshake, bytes), and
    /// the packet filter's state (policy enforced and version, packets denied by reason), where
    /// the netmap came from (<see cref="MeshNodeStatus.NetmapSource"/>), its age, and health warnings.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public MeshNodeStatus GetStatus()
    {
        ThrowIfDisposed();
        var map = _netmap!;
        var device = _dataPlane!.Device;
        var now = _time.GetUtcNow();
        var applied = _dataPlane.Peers!.Applied;
        var measured = new Dictionary<WireGuardPublicKey, WireGuardPeerStatus>();
        foreach (var status in device.GetPeers())
        {
            measured[status.PublicKey] = status;
        }
        var peers = new List<MeshPeerStatus>(map.Peers.Count);
        foreach (var peer in map.Peers.Values)
        {
            WireGuardPeerStatus? wireGuard = null;
            bool configured = peer.Key is not null && applied.ContainsKey(peer.Key) && !peer.IsExpired(now);
            if (configured)
            {
                measured.TryGetValue(peer.Key!, out wireGuard);
            }
            peers.Add(new MeshPeerStatus
            {
                Identity = MeshPeerIdentity.From(map, peer),
                Online = peer.Online,
                Configured = configured,
                Endpoint = wireGuard?.Endpoint,
                AdvertisedEndpoints = [.. peer.Endpoints],
                LastHandshake = wireGuard?.LastHandshake,
                BytesReceived = wireGuard?.ReceivedBytes ?? 0,
                BytesSent = wireGuard?.SentBytes ?? 0,
                KeyExpiry = peer.KeyExpiry,
                LastSeen = peer.LastSeen,
            });
        }
        var failure = _session.LastFailure;
        bool connected = _session.Connected;
        var netmapAge = now - _cache.ReceivedAt;
        var filter = _dataPlane.Filter;
        return new MeshNodeStatus
        {
            Self = MeshPeerIdentity.From(map, map.Self),
            Tailnet = _registration.Tailnet,
            ListenPort = device.ListenPort,
            Endpoints = [.. _session.Endpoints],
            KeyExpiry = map.Self.KeyExpiry,
            ControlConnected = connected,
            NetmapSource = _cache.OnCachedNetmap ? MeshNetmapSource.Cached : MeshNetmapSource.Live,
            NetmapAge = netmapAge < TimeSpan.Zero ? TimeSpan.Zero : netmapAge,
            HealthWarnings = HealthWarnings(connected, failure, netmapAge),
            LastControlError = failure?.Code,
            LastControlErrorMessage = failure?.Message,
            NetmapSequence = map.Sequence,
            PolicyEnforced = filter.Enforced,
            PolicyVersion = filter.PolicyVersion,
            PacketsDeniedByPolicy = filter.TotalDenied,
            PolicyDenials = filter.DenialsSnapshot(),
            TrackedFlows = filter.Tracker.Count,
            TrackedFlowsEvicted = filter.Tracker.Evictions,
            Peers = peers,
        };
    }

    /// <summary>The health warnings of <see cref="GetStatus"/>.</summary>
    private List<string> HealthWarnings(bool connected, ControlFailure? failure, TimeSpan netmapAge)
    {
        var warnings = new List<string>();
        if (_cache.OnCachedNetmap)
        {
            string control = failure is null
                ? "the coordination service has not been reached yet"
                : $"the coordination service is unreachable: {failure.Message}";
            warnings.Add($"running on a cached netmap received {NodeNetmapCache.FormatAge(netmapAge)} ago; {control}");
        }
        else if (!connected && failure is not null)
        {
            warnings.Add($"not connected to the coordination service (the netmap in use may be out of date): {failure.Message}");
        }
        if (_cache.WriteError is { } error)
        {
            warnings.Add($"the netmap cache could not be written: {error}");
        }
        return warnings;
    }
}
