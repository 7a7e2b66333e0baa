using System.Collections.Immutable;
using MeshNet.Control.V1;

namespace MeshNet.Netmap;

/// <summary>
/// Applies map-stream messages to netmap snapshots: a <see cref="FullMap"/> replaces everything,
/// a <see cref="MapDelta"/> changes a copy of the current snapshot in the protocol's field order
/// (peers changed, peers removed, patches, self, filter chunks (all of them when the delta says
/// its chunks are complete), filter enforcement, policy version, server list). Pure functions:
/// no I/O, no clock.
/// </summary>
internal static class NetmapApplier
{
    /// <summary>The snapshot a full map describes.</summary>
    /// <exception cref="ControlProtocolException">The map has no self.</exception>
    public static NetmapSnapshot ApplyFull(FullMap full, string session, ulong sequence, ulong revision = 0, ulong epoch = 0)
    {
        ArgumentNullException.ThrowIfNull(full);
        if (full.Self is null)
        {
            throw new ControlProtocolException("a full map without the node's own record");
        }
        var self = NetmapNode.FromProto(full.Self);
        var peers = ImmutableSortedDictionary.CreateBuilder<ulong, NetmapNode>();
        foreach (var node in full.Peers)
        {
            if (node.Id != self.Id)
            {
                peers[node.Id] = NetmapNode.FromProto(node);
            }
        }
        var filter = ImmutableSortedDictionary.CreateBuilder<string, FilterChunk>(StringComparer.Ordinal);
        foreach (var chunk in full.Filter)
        {
            if (chunk.Rules.Count > 0)
            {
                filter[chunk.Name] = chunk;
            }
        }
        return new NetmapSnapshot
        {
            Self = self,
            Peers = peers.ToImmutable(),
            Domain = NormalizeDomain(full.Domain),
            Filter = filter.ToImmutable(),
            FilterEnforced = full.FilterEnforced,
            PolicyVersion = full.PolicyVersion,
            NetmapCacheForbidden = full.NetmapCacheForbidden,
            Session = session,
            Sequence = sequence,
            Revision = revision,
            Epoch = epoch,
            ControlUrls = [.. full.ControlUrls],
        };
    }

    /// <summary>The snapshot after <paramref name="delta"/>.</summary>
    /// <param name="current">The snapshot the delta applies to.</param>
    /// <param name="delta">The change.</param>
    /// <param name="sequence">The message's sequence number.</param>
    /// <param name="ignoredPatches">Patches for peers this node does not know (ignored).</param>
    /// <param name="revision">The message's tailnet revision (0: keep the current one).</param>
    /// <param name="epoch">The message's epoch (0: keep the current one).</param>
    public static NetmapSnapshot ApplyDelta(NetmapSnapshot current, MapDelta delta, ulong sequence, out int ignoredPatches, ulong revision = 0, ulong epoch = 0)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(delta);
        ignoredPatches = 0;
        var peers = current.Peers.ToBuilder();
        var selfId = current.Self.Id;

        foreach (var node in delta.PeersChanged)
        {
            if (node.Id != selfId)
            {
                peers[node.Id] = NetmapNode.FromProto(node);
            }
        }
        foreach (var id in delta.PeersRemoved)
        {
            peers.Remove(id);
        }
        foreach (var patch in delta.Patches)
        {
            if (peers.TryGetValue(patch.Id, out var peer))
            {
                peers[patch.Id] = ApplyPatch(peer, patch);
            }
            else
            {
                ignoredPatches++;
            }
        }

        var self = current.Self;
        if (delta.SelfChanged is { } changed)
        {
            self = NetmapNode.FromProto(changed);
            // The node's id never changes inside one registration; a different one would be a
            // service bug, and a peer with our new id must not shadow us.
            peers.Remove(self.Id);
        }

        var filter = current.Filter;
        if (delta.FilterChunks.Count > 0 || delta.FilterComplete)
        {
            var builder = filter.ToBuilder();
            if (delta.FilterComplete)
            {
                builder.Clear();
            }
            foreach (var chunk in delta.FilterChunks)
            {
                if (chunk.Rules.Count == 0)
                {
                    builder.Remove(chunk.Name);
                }
                else
                {
                    builder[chunk.Name] = chunk;
                }
            }
            filter = builder.ToImmutable();
        }

        return new NetmapSnapshot
        {
            Self = self,
            Peers = peers.ToImmutable(),
            Domain = current.Domain,
            Filter = filter,
            FilterEnforced = delta.HasFilterEnforced ? delta.FilterEnforced : current.FilterEnforced,
            PolicyVersion = delta.HasPolicyVersion ? delta.PolicyVersion : current.PolicyVersion,
            NetmapCacheForbidden = delta.HasNetmapCacheForbidden ? delta.NetmapCacheForbidden : current.NetmapCacheForbidden,
            Session = current.Session,
            Sequence = sequence,
            Revision = revision == 0 ? current.Revision : revision,
            Epoch = epoch == 0 ? current.Epoch : epoch,
            ControlUrls = delta.ControlUrls is { } urls ? [.. urls.Values] : current.ControlUrls,
        };
    }

    /// <summary>A peer with the fields present in <paramref name="patch"/> replaced.</summary>
    public static NetmapNode ApplyPatch(NetmapNode peer, PeerPatch patch)
    {
        var result = peer;
        if (patch.HasOnline)
        {
            result = result with { Online = patch.Online };
        }
        if (patch.Endpoints is { } endpoints)
        {
            result = result with { Endpoints = NetmapNode.ParseEndpoints(endpoints.Values) };
        }
        if (!patch.NodeKey.IsEmpty)
        {
            result = result with { Key = NetmapNode.ParseKey(patch.NodeKey.Span) };
        }
        if (patch.KeyExpiry is { } expiry)
        {
            result = result with { KeyExpiry = expiry.ToDateTimeOffset() };
        }
        if (patch.LastSeen is { } lastSeen)
        {
            result = result with { LastSeen = lastSeen.ToDateTimeOffset() };
        }
        if (patch.Instance.Length > 0)
        {
            result = result with { Instance = patch.Instance };
        }
        return result;
    }

    /// <summary>
    /// The full map that <see cref="ApplyFull"/> turns back into <paramref name="snapshot"/> (for
    /// the netmap cache): self, peers sorted by id, domain, filter chunks, enforcement, policy
    /// version and cache permission.
    /// </summary>
    public static FullMap ToFullMap(NetmapSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var full = new FullMap
        {
            Self = snapshot.Self.ToProto(),
            Domain = snapshot.Domain,
            FilterEnforced = snapshot.FilterEnforced,
            PolicyVersion = snapshot.PolicyVersion,
            NetmapCacheForbidden = snapshot.NetmapCacheForbidden,
        };
        full.ControlUrls.Add(snapshot.ControlUrls);
        foreach (var peer in snapshot.Peers.Values)
        {
            full.Peers.Add(peer.ToProto());
        }
        full.Filter.Add(snapshot.Filter.Values);
        return full;
    }

    /// <summary>Lower case, without a trailing dot.</summary>
    public static string NormalizeDomain(string domain) => domain.TrimEnd('.').ToLowerInvariant();
}
