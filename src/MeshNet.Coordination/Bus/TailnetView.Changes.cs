using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// Committed changes: each updates the view (and its revision) and returns the deltas of the
/// nodes it affects, for the bus to deliver. <c>hasSession</c> says which nodes have a session
/// (connected or retained); deltas addressed to single nodes are built only for those.
/// </summary>
internal sealed partial class TailnetView
{
    /// <summary>
    /// A node joined, or its durable record changed as a whole (hostname, tags): the nodes that
    /// see it get the record, those that no longer see it (tags changed) a removal, destinations
    /// of rules whose sources it changed their new chunk; the node itself its record and the
    /// change of its own view. Live state of a known node is kept. One delta per node, the
    /// node's own last.
    /// </summary>
    public List<(ulong NodeId, MapDelta Delta)> Upsert(StoredNode stored, ulong revision, Func<ulong, bool> hasSession)
    {
        Advance(revision);
        Node record;
        bool existed = _nodes.TryGetValue(stored.Id, out var existing);
        if (existing is not null)
        {
            record = NodeRecords.ToProto(stored);
            record.Online = existing.Record.Online;
            record.Endpoints.Clear();
            record.Endpoints.Add(existing.Record.Endpoints);
            record.LastSeen = existing.Record.LastSeen;
            record.Instance = existing.Record.Instance;
            bool tagsChanged = !existing.Record.Tags.SequenceEqual(record.Tags) || existing.Record.User != record.User;
            existing.Record = record;
            existing.KeyExpiry = stored.KeyExpiry;
            existing.Revision = revision;
            if (tagsChanged)
            {
                existing.TagsRevision = revision;
            }
        }
        else
        {
            record = NodeRecords.ToProto(stored);
            _nodes[stored.Id] = new ViewNode(record, stored.KeyExpiry, revision, revision);
        }
        return NodeChanged(stored.Id, record, existed, hasSession);
    }

    /// <summary>
    /// The node's key was rotated: the patch for the nodes that see it (new key and expiry) and
    /// its new record; null when the node is unknown.
    /// </summary>
    public (MapDelta Patch, Node Self)? RotateKey(ulong id, ReadOnlySpan<byte> newKey, DateTimeOffset keyExpiry, ulong revision)
    {
        if (!_nodes.TryGetValue(id, out var node))
        {
            return null;
        }
        Advance(revision);
        var key = ByteString.CopyFrom(newKey);
        var expiry = Timestamp.FromDateTimeOffset(keyExpiry);
        var record = node.Record.Clone();
        record.NodeKey = key;
        record.KeyExpiry = expiry;
        node.Record = record;
        node.KeyExpiry = keyExpiry;
        node.Revision = revision;
        return (new MapDelta { Patches = { new PeerPatch { Id = id, NodeKey = key, KeyExpiry = expiry } } }, record);
    }

    /// <summary>
    /// Sets the node's key expiry (a committed write at <paramref name="revision"/>, or 0: its
    /// moment was reached, nothing written): the patch for the nodes that see it and its new
    /// record, or null when the node is unknown or neither the expiry changed nor was it reached.
    /// </summary>
    public (MapDelta Patch, Node Self)? SetKeyExpiry(ulong id, DateTimeOffset keyExpiry, DateTimeOffset now, ulong revision)
    {
        if (!_nodes.TryGetValue(id, out var node))
        {
            return null;
        }
        Advance(revision);
        // A changed expiry, or the moment it is reached (peers already had the time, but
        // hearing it then lets them mark the node expired without a clock of their own).
        if (node.KeyExpiry == keyExpiry && keyExpiry > now)
        {
            return null;
        }
        var expiry = Timestamp.FromDateTimeOffset(keyExpiry);
        var record = node.Record.Clone();
        record.KeyExpiry = expiry;
        node.Record = record;
        node.KeyExpiry = keyExpiry;
        if (revision > 0)
        {
            node.Revision = revision;
        }
        return (new MapDelta { Patches = { new PeerPatch { Id = id, KeyExpiry = expiry } } }, record);
    }

    /// <summary>
    /// The node left (a committed removal): it is kept as a tombstone for catch-ups; the nodes
    /// that saw it get a removal, destinations of rules it was a source of their new chunk. Null
    /// when the node is unknown.
    /// </summary>
    public List<(ulong NodeId, MapDelta Delta)>? Remove(ulong id, ulong revision, Func<ulong, bool> hasSession)
    {
        if (!_nodes.Remove(id))
        {
            return null;
        }
        Advance(revision);
        _removals.Add((id, revision));
        var before = _access.Visible(id);
        var changedRules = _access.Remove(id);
        var deltas = new Dictionary<ulong, MapDelta>();
        foreach (int slot in before.Slots())
        {
            DeltaFor(deltas, _access.IdAt(slot), id, hasSession)?.PeersRemoved.Add(id);
        }
        AddChunkChanges(deltas, changedRules, id, hasSession);
        return [.. deltas.Select(pair => (pair.Key, pair.Value))];
    }

    /// <summary>
    /// Committed live state (revision <paramref name="revision"/>): each node's record changes;
    /// returns per node the patch (online, endpoints, run id, last seen) for the nodes that see
    /// it. Unknown nodes are skipped.
    /// </summary>
    public List<(ulong NodeId, MapDelta Patch)> ApplyLive(IReadOnlyList<NodeLiveState> states, ulong revision)
    {
        Advance(revision);
        var patches = new List<(ulong, MapDelta)>(states.Count);
        foreach (var state in states)
        {
            if (!_nodes.TryGetValue(state.NodeId, out var node))
            {
                continue;
            }
            var record = node.Record.Clone();
            var patch = new PeerPatch { Id = state.NodeId };
            if (record.Online != state.Online)
            {
                record.Online = state.Online;
                patch.Online = state.Online;
            }
            if (!record.Endpoints.SequenceEqual(state.Endpoints))
            {
                record.Endpoints.Clear();
                record.Endpoints.Add(state.Endpoints);
                var endpoints = new Endpoints();
                endpoints.Values.Add(state.Endpoints);
                patch.Endpoints = endpoints;
            }
            if (record.Instance != state.Instance)
            {
                record.Instance = state.Instance; // a restart: peers hand it a new WireGuard session
                patch.Instance = state.Instance;
            }
            if (state.LastSeen is { } lastSeen)
            {
                record.LastSeen = Timestamp.FromDateTimeOffset(lastSeen);
                patch.LastSeen = record.LastSeen;
            }
            node.Record = record;
            node.Revision = revision;
            patches.Add((state.NodeId, new MapDelta { Patches = { patch } }));
        }
        return patches;
    }

    /// <summary>
    /// Puts a new policy in force (null: none, everything allowed) and returns, in node order,
    /// ONE delta for each node with a session whose view changed: newly visible peers (full
    /// records), peers no longer visible, changed and removed filter chunks,
    /// <c>filter_enforced</c> when enforcement starts or stops, <c>netmap_cache_forbidden</c>
    /// when that changes for the node, and the policy version. Nodes with a session whose view
    /// did not change get only the new version (<c>VersionOnly</c>: one small delta shared by
    /// all of them), so that every node can report which policy it enforces. Compiles once
    /// (O(nodes × rules)); nodes with the same rule memberships share their visibility diff.
    /// </summary>
    /// <returns>How many nodes' peers, filter or enforcement changed (with a session or not), and the deltas.</returns>
    public (int Affected, List<(ulong NodeId, MapDelta Delta)> Deltas, MapDelta? VersionOnly) SetPolicy(PolicyDocument? policy, ulong version,
        ulong revision, Func<ulong, bool> hasSession)
    {
        Advance(revision);
        _policyRevision = Math.Max(_policyRevision, revision);
        var old = _access;
        var next = old.WithPolicy(policy, version);
        _access = next;
        bool enforcementChanged = old.Enforced != next.Enforced;
        var diffs = new Dictionary<(NodeBitset Old, NodeBitset New), (List<int> Added, List<int> Removed)>();
        int affected = 0;
        var deltas = new List<(ulong, MapDelta)>();
        MapDelta? versionOnly = old.Version != next.Version ? new MapDelta { PolicyVersion = next.Version } : null;
        foreach (var id in _nodes.Keys)
        {
            var before = old.Visible(id);
            var after = next.Visible(id);
            if (!diffs.TryGetValue((before, after), out var diff))
            {
                diff = ReferenceEquals(before, after) ? ([], []) : (after.Except(before), before.Except(after));
                diffs[(before, after)] = diff;
            }
            var chunks = new RepeatedField<FilterChunk>();
            DiffChunks(old.Chunks(id), next.Chunks(id), chunks);
            bool peersChanged = diff.Added.Any(slot => next.IdAt(slot) != id) || diff.Removed.Any(slot => old.IdAt(slot) != id);
            bool cacheForbidden = next.NetmapCacheForbidden(id);
            bool cacheChanged = cacheForbidden != old.NetmapCacheForbidden(id);
            if (!peersChanged && chunks.Count == 0 && !enforcementChanged && !cacheChanged)
            {
                if (versionOnly is not null && hasSession(id))
                {
                    deltas.Add((id, versionOnly));
                }
                continue;
            }
            affected++;
            if (!hasSession(id))
            {
                continue;
            }
            var delta = new MapDelta { PolicyVersion = next.Version };
            foreach (int slot in diff.Added)
            {
                ulong peer = next.IdAt(slot);
                if (peer != id && _nodes.TryGetValue(peer, out var node))
                {
                    delta.PeersChanged.Add(node.Record);
                }
            }
            foreach (int slot in diff.Removed)
            {
                ulong peer = old.IdAt(slot);
                if (peer != id)
                {
                    delta.PeersRemoved.Add(peer);
                }
            }
            delta.FilterChunks.Add(chunks);
            if (enforcementChanged)
            {
                delta.FilterEnforced = next.Enforced;
            }
            if (cacheChanged)
            {
                delta.NetmapCacheForbidden = cacheForbidden;
            }
            deltas.Add((id, delta));
        }
        return (affected, deltas, versionOnly);
    }

    /// <summary>
    /// The deltas of a node that joined or whose record changed: the nodes that see it get the
    /// record, those that no longer see it (tags changed) a removal, destinations of rules whose
    /// sources it changed their new chunk; the node itself (last) its record and the change of
    /// its own view.
    /// </summary>
    private List<(ulong NodeId, MapDelta Delta)> NodeChanged(ulong id, Node record, bool existed, Func<ulong, bool> hasSession)
    {
        var before = existed ? _access.Visible(id) : NodeBitset.Empty;
        var chunksBefore = existed ? _access.Chunks(id) : [];
        bool cacheForbiddenBefore = existed && _access.NetmapCacheForbidden(id);
        var changedRules = _access.Upsert(id, Subject(record));
        var after = _access.Visible(id);
        var deltas = new Dictionary<ulong, MapDelta>();
        foreach (int slot in after.Slots())
        {
            DeltaFor(deltas, _access.IdAt(slot), id, hasSession)?.PeersChanged.Add(record);
        }
        var removed = before.Except(after);
        foreach (int slot in removed)
        {
            DeltaFor(deltas, _access.IdAt(slot), id, hasSession)?.PeersRemoved.Add(id);
        }
        AddChunkChanges(deltas, changedRules, id, hasSession);
        var result = new List<(ulong, MapDelta)>(deltas.Count + 1);
        result.AddRange(deltas.Select(pair => (pair.Key, pair.Value)));
        if (!hasSession(id))
        {
            return result;
        }
        var own = new MapDelta { SelfChanged = record };
        if (existed)
        {
            foreach (int slot in after.Except(before))
            {
                ulong peer = _access.IdAt(slot);
                if (peer != id && _nodes.TryGetValue(peer, out var node))
                {
                    own.PeersChanged.Add(node.Record);
                }
            }
            foreach (int slot in removed)
            {
                ulong peer = _access.IdAt(slot);
                if (peer != id)
                {
                    own.PeersRemoved.Add(peer);
                }
            }
            DiffChunks(chunksBefore, _access.Chunks(id), own.FilterChunks);
            if (_access.NetmapCacheForbidden(id) is var cacheForbidden && cacheForbidden != cacheForbiddenBefore)
            {
                own.NetmapCacheForbidden = cacheForbidden; // its tags changed
            }
        }
        result.Add((id, own));
        return result;
    }

    private void AddChunkChanges(Dictionary<ulong, MapDelta> deltas, IReadOnlyList<int> changedRules, ulong changedNode, Func<ulong, bool> hasSession)
    {
        foreach (int rule in changedRules)
        {
            var name = _access.ChunkName(rule);
            foreach (var destination in _access.DestinationsOf(rule))
            {
                if (DeltaFor(deltas, destination, changedNode, hasSession) is { } delta)
                {
                    delta.FilterChunks.Add(_access.ChunkOf(destination, rule)?.Wire ?? new FilterChunk { Name = name });
                }
            }
        }
    }

    /// <summary>The pending delta of a node with a session other than <paramref name="except"/>; null otherwise.</summary>
    private static MapDelta? DeltaFor(Dictionary<ulong, MapDelta> deltas, ulong nodeId, ulong except, Func<ulong, bool> hasSession)
    {
        if (nodeId == except || nodeId == 0 || !hasSession(nodeId))
        {
            return null;
        }
        if (!deltas.TryGetValue(nodeId, out var delta))
        {
            delta = new MapDelta();
            deltas[nodeId] = delta;
        }
        return delta;
    }

    /// <summary>Adds chunks that are new or whose content changed, and an empty chunk for each name that went away.</summary>
    private static void DiffChunks(IReadOnlyList<CompiledChunk> before, IReadOnlyList<CompiledChunk> after, RepeatedField<FilterChunk> into)
    {
        var old = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var chunk in before)
        {
            old[chunk.Name] = chunk.Hash;
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chunk in after)
        {
            names.Add(chunk.Name);
            if (!old.TryGetValue(chunk.Name, out var hash) || hash != chunk.Hash)
            {
                into.Add(chunk.Wire);
            }
        }
        foreach (var chunk in before)
        {
            if (!names.Contains(chunk.Name))
            {
                into.Add(new FilterChunk { Name = chunk.Name });
            }
        }
    }
}
