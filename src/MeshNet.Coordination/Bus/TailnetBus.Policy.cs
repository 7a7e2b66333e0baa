using Google.Protobuf.Collections;
using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;

namespace MeshNet.Coordination.Bus;

internal sealed partial class TailnetBus
{
    /// <summary>
    /// Puts a new policy in force (null: none, everything allowed) and sends each node whose
    /// view changed ONE delta: newly visible peers (full records), peers no longer visible,
    /// changed and removed filter chunks, <c>filter_enforced</c> when enforcement starts or
    /// stops, <c>netmap_cache_forbidden</c> when that changes for the node, and the policy version. Nodes whose view did not change get only the new version
    /// (one small delta shared by all of them), so that every node can report which policy it
    /// enforces. Compiles once
    /// (O(nodes × rules)); nodes with the same rule memberships share their visibility diff.
    /// </summary>
    /// <returns>How many nodes' peers, filter or enforcement changed (connected or not).</returns>
    public int SetPolicy(PolicyDocument? policy, ulong version, ulong revision = 0)
    {
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            Advance(revision);
            _policyRevision = Math.Max(_policyRevision, revision);
            var old = _access;
            var next = old.WithPolicy(policy, version);
            _access = next;
            bool enforcementChanged = old.Enforced != next.Enforced;
            var diffs = new Dictionary<(NodeBitset Old, NodeBitset New), (List<int> Added, List<int> Removed)>();
            int affected = 0;
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
                    if (versionOnly is not null && _sessions.TryGetValue(id, out var unchanged))
                    {
                        Deliver(unchanged, versionOnly);
                    }
                    continue;
                }
                affected++;
                if (!_sessions.TryGetValue(id, out var session))
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
                Deliver(session, delta);
                _counters.PolicyDeltaSent();
            }
            return affected;
        }
    }

    /// <summary>
    /// A node joined or its record changed: the nodes that see it get the record, those that
    /// no longer see it (tags changed) a removal, destinations of rules whose sources it
    /// changed their new chunk; the node itself its record and the change of its own view.
    /// One delta per node. Caller holds the lock.
    /// </summary>
    private void PublishNodeChange(ulong id, Node record, bool existed)
    {
        var before = existed ? _access.Visible(id) : NodeBitset.Empty;
        var chunksBefore = existed ? _access.Chunks(id) : [];
        bool cacheForbiddenBefore = existed && _access.NetmapCacheForbidden(id);
        var changedRules = _access.Upsert(id, Subject(record));
        var after = _access.Visible(id);
        var deltas = new Dictionary<ulong, MapDelta>();
        foreach (int slot in after.Slots())
        {
            DeltaFor(deltas, _access.IdAt(slot), id)?.PeersChanged.Add(record);
        }
        var removed = before.Except(after);
        foreach (int slot in removed)
        {
            DeltaFor(deltas, _access.IdAt(slot), id)?.PeersRemoved.Add(id);
        }
        AddChunkChanges(deltas, changedRules, id);
        foreach (var (peer, delta) in deltas)
        {
            Deliver(_sessions[peer], delta);
        }
        if (_sessions.TryGetValue(id, out var own))
        {
            var delta = new MapDelta { SelfChanged = record };
            if (existed)
            {
                foreach (int slot in after.Except(before))
                {
                    ulong peer = _access.IdAt(slot);
                    if (peer != id && _nodes.TryGetValue(peer, out var node))
                    {
                        delta.PeersChanged.Add(node.Record);
                    }
                }
                foreach (int slot in removed)
                {
                    ulong peer = _access.IdAt(slot);
                    if (peer != id)
                    {
                        delta.PeersRemoved.Add(peer);
                    }
                }
                DiffChunks(chunksBefore, _access.Chunks(id), delta.FilterChunks);
                if (_access.NetmapCacheForbidden(id) is var cacheForbidden && cacheForbidden != cacheForbiddenBefore)
                {
                    delta.NetmapCacheForbidden = cacheForbidden; // its tags changed
                }
            }
            Deliver(own, delta);
        }
    }

    /// <summary>A node left: the nodes that saw it get a removal, destinations of rules it was a source of their new chunk. Caller holds the lock.</summary>
    private void PublishRemoval(ulong id)
    {
        var before = _access.Visible(id);
        var changedRules = _access.Remove(id);
        if (_closedFailure is not null)
        {
            return;
        }
        var deltas = new Dictionary<ulong, MapDelta>();
        foreach (int slot in before.Slots())
        {
            DeltaFor(deltas, _access.IdAt(slot), id)?.PeersRemoved.Add(id);
        }
        AddChunkChanges(deltas, changedRules, id);
        foreach (var (peer, delta) in deltas)
        {
            Deliver(_sessions[peer], delta);
        }
    }

    private void AddChunkChanges(Dictionary<ulong, MapDelta> deltas, IReadOnlyList<int> changedRules, ulong changedNode)
    {
        foreach (int rule in changedRules)
        {
            var name = _access.ChunkName(rule);
            foreach (var destination in _access.DestinationsOf(rule))
            {
                if (DeltaFor(deltas, destination, changedNode) is { } delta)
                {
                    delta.FilterChunks.Add(_access.ChunkOf(destination, rule)?.Wire ?? new FilterChunk { Name = name });
                }
            }
        }
    }

    /// <summary>The pending delta of a connected (or resumable) node other than <paramref name="except"/>; null otherwise.</summary>
    private MapDelta? DeltaFor(Dictionary<ulong, MapDelta> deltas, ulong nodeId, ulong except)
    {
        if (nodeId == except || nodeId == 0 || !_sessions.ContainsKey(nodeId))
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

    private static PolicySubject Subject(Node record) => PolicySubject.ForNode(record.User, record.Tags, record.Addresses);
}
