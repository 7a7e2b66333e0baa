using MeshNet.Control.V1;

namespace MeshNet.Coordination.Bus;

internal sealed partial class TailnetBus
{
    /// <summary>
    /// The delta that brings a node that applied everything up to <paramref name="lastRevision"/>
    /// to the bus's current state, or null when the change log does not cover that: the revision
    /// is below the log floor or ahead of the bus, or the policy or the node's own tags changed
    /// since (its whole view may differ; it needs a full netmap). Peers changed since are sent
    /// whole (visible) or removed (no longer visible), removals since are sent, and when the set
    /// of nodes or their tags changed, the node's complete filter. An empty delta means nothing
    /// changed. Caller holds the lock.
    /// </summary>
    private MapDelta? BuildCatchUp(ulong selfId, ulong lastRevision)
    {
        if (lastRevision < _logFloor || lastRevision > _revision || _policyRevision > lastRevision ||
            !_nodes.TryGetValue(selfId, out var self) || self.TagsRevision > lastRevision)
        {
            return null;
        }
        var delta = new MapDelta();
        bool membershipChanged = false;
        var visible = _access.Enforced ? _access.Visible(selfId) : null;
        foreach (var (id, node) in _nodes)
        {
            if (node.Revision <= lastRevision)
            {
                continue;
            }
            if (id == selfId)
            {
                delta.SelfChanged = node.Record;
                continue;
            }
            membershipChanged |= node.TagsRevision > lastRevision;
            bool sees = visible is null || (_access.TryGetSlot(id, out int slot) && visible.Contains(slot));
            if (sees)
            {
                delta.PeersChanged.Add(node.Record);
            }
            else
            {
                delta.PeersRemoved.Add(id);
            }
        }
        foreach (var (id, revision) in _removals)
        {
            if (revision > lastRevision)
            {
                delta.PeersRemoved.Add(id);
                membershipChanged = true;
            }
        }
        if (membershipChanged && _access.Enforced)
        {
            delta.FilterComplete = true;
            delta.FilterChunks.Add(_access.Chunks(selfId).Select(chunk => chunk.Wire));
        }
        return delta;
    }
}
