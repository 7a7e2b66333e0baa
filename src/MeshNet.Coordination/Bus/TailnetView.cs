using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The view of one tailnet's nodes that its <see cref="TailnetBus"/> publishes: each node's wire
/// record (online state, endpoints and run id included) with its key expiry and the revisions
/// that last changed it and its tags; the compiled policy (<see cref="AccessGraph"/>); the
/// removals after the change log's floor; the tailnet revision, log floor and policy revision;
/// and the control URLs. It builds full netmaps and catch-up deltas, and turns each committed
/// change into the deltas of the nodes it affects (<c>TailnetView.Changes.cs</c>). It knows
/// nothing of sessions or streams: a predicate says which nodes have a session, so that deltas
/// are built only for those, and the bus hands the deltas to its <see cref="TailnetSessions"/>.
/// </summary>
/// <remarks>
/// Not thread-safe: owned by one <see cref="TailnetBus"/> and used only under its lock (in-memory
/// work only). Wire records (<see cref="Node"/>) may be shared by queued messages and are never
/// mutated: a change replaces the record with a modified clone.
/// </remarks>
internal sealed partial class TailnetView
{
    private readonly SortedDictionary<ulong, ViewNode> _nodes = [];
    private readonly List<(ulong NodeId, ulong Revision)> _removals = [];
    private AccessGraph _access = new(null, 0);
    private ulong _revision;
    private ulong _logFloor;
    private ulong _policyRevision;
    private IReadOnlyList<string> _controlUrls = [];

    public TailnetView(string domain) => Domain = domain;

    /// <summary>The tailnet's DNS domain (full netmaps carry it).</summary>
    public string Domain { get; }

    /// <summary>The tailnet revision of the last change applied.</summary>
    public ulong Revision => _revision;

    public int NodeCount => _nodes.Count;

    /// <summary>The policy in force (null: everything inside the tailnet is allowed).</summary>
    public PolicyDocument? Policy => _access.Policy;

    /// <summary>
    /// Fills the view from a snapshot of the store: nodes with their live state and revisions, the
    /// policy in force, removals after the log floor. Called once, before use.
    /// </summary>
    public void Load(StoredTailnetState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        _access = new AccessGraph(TailnetHub.ParsePolicy(state.Policy), state.Policy?.Version ?? 0);
        _policyRevision = state.Policy?.Revision ?? 0;
        _revision = state.Revision;
        _logFloor = state.LogFloor;
        _removals.AddRange(state.Removals);
        AddNodes(state.Nodes);
    }

    /// <summary>Fills the view with stored nodes and a policy (tests: no revisions, no log).</summary>
    public void Load(IEnumerable<StoredNode> nodes, PolicyDocument? policy, ulong policyVersion)
    {
        _access = new AccessGraph(policy, policyVersion);
        AddNodes(nodes);
    }

    /// <summary>Sets the coordination servers full maps name; the delta that tells every session, or null when they did not change.</summary>
    public MapDelta? SetControlUrls(IReadOnlyList<string> urls)
    {
        if (_controlUrls.SequenceEqual(urls, StringComparer.Ordinal))
        {
            return null;
        }
        _controlUrls = urls;
        var wrapper = new ControlUrls();
        wrapper.Values.Add(urls);
        return new MapDelta { ControlUrls = wrapper };
    }

    /// <summary>The node's current wire record, or null.</summary>
    public Node? Record(ulong id) => _nodes.TryGetValue(id, out var node) ? node.Record : null;

    public bool Contains(ulong id) => _nodes.ContainsKey(id);

    /// <summary>The nodes marked online, by id.</summary>
    public List<ulong> OnlineNodes() => [.. _nodes.Where(pair => pair.Value.Record.Online).Select(pair => pair.Key)];

    /// <summary>Checks that the node may open a map stream: registered, with this key, not expired.</summary>
    /// <exception cref="CoordinationException">NotRegistered (removed, or its key was replaced), or the key expired.</exception>
    public void RequireAttachable(ulong nodeId, ReadOnlySpan<byte> nodeKey, DateTimeOffset now) => Attachable(nodeId, nodeKey, now);

    /// <summary>Moves the revision forward to a committed write's.</summary>
    public void Advance(ulong revision)
    {
        if (revision > _revision)
        {
            _revision = revision;
        }
    }

    /// <summary>
    /// The nodes that may see <paramref name="nodeId"/> (itself possibly included), or null when
    /// no policy is in force (every node sees every other). Enumerate before the view changes.
    /// </summary>
    public IEnumerable<ulong>? ViewersOf(ulong nodeId) => _access.Enforced ? Ids(_access, _access.Visible(nodeId)) : null;

    /// <summary>
    /// The full netmap of a node: itself, the peers it may see sorted by id, the domain, its
    /// filter chunks, whether they are enforced, the policy version and the control URLs.
    /// </summary>
    public FullMap BuildFullMap(ulong selfId)
    {
        var full = new FullMap
        {
            Self = _nodes[selfId].Record,
            Domain = Domain,
            FilterEnforced = _access.Enforced,
            PolicyVersion = _access.Version,
            NetmapCacheForbidden = _access.NetmapCacheForbidden(selfId),
        };
        full.ControlUrls.Add(_controlUrls);
        if (!_access.Enforced)
        {
            foreach (var (id, node) in _nodes)
            {
                if (id != selfId)
                {
                    full.Peers.Add(node.Record);
                }
            }
            return full;
        }
        var peers = new List<Node>();
        foreach (int slot in _access.Visible(selfId).Slots())
        {
            ulong id = _access.IdAt(slot);
            if (id != selfId && _nodes.TryGetValue(id, out var node))
            {
                peers.Add(node.Record);
            }
        }
        peers.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        full.Peers.Add(peers);
        full.Filter.Add(_access.Chunks(selfId).Select(chunk => chunk.Wire));
        return full;
    }

    /// <summary>
    /// The delta that brings a node that applied everything up to <paramref name="lastRevision"/>
    /// to the view's current state, or null when the change log does not cover that: the revision
    /// is below the log floor or ahead of the view, or the policy or the node's own tags changed
    /// since (its whole view may differ; it needs a full netmap). Peers changed since are sent
    /// whole (visible) or removed (no longer visible), removals since are sent, and when the set
    /// of nodes or their tags changed, the node's complete filter. An empty delta means nothing
    /// changed.
    /// </summary>
    public MapDelta? BuildCatchUp(ulong selfId, ulong lastRevision)
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

    /// <summary>
    /// The live state the node will have once connected, or null when that is what it has (or
    /// what <paramref name="planned"/>, a state not yet written, gives it).
    /// </summary>
    /// <exception cref="CoordinationException">The node is gone, its key was replaced or expired.</exception>
    public NodeLiveState? LiveStateOnAttach(ulong nodeId, ReadOnlySpan<byte> nodeKey, IReadOnlyList<string> endpoints, string instance,
        DateTimeOffset now, NodeLiveState? planned)
    {
        var record = Attachable(nodeId, nodeKey, now).Record;
        bool online = planned?.Online ?? record.Online;
        IReadOnlyList<string> current = planned?.Endpoints ?? record.Endpoints;
        string currentInstance = planned?.Instance ?? record.Instance;
        string newInstance = instance.Length > 0 ? instance : currentInstance;
        if (online && current.SequenceEqual(endpoints) && currentInstance == newInstance)
        {
            return null;
        }
        return new NodeLiveState(nodeId, true, endpoints, newInstance, null);
    }

    /// <summary>The live state after an endpoint report (on top of <paramref name="planned"/>), or null when nothing changes or the node is gone.</summary>
    public NodeLiveState? LiveStateOnEndpoints(ulong nodeId, IReadOnlyList<string> endpoints, NodeLiveState? planned)
    {
        if (!_nodes.TryGetValue(nodeId, out var node) || (planned?.Endpoints ?? node.Record.Endpoints).SequenceEqual(endpoints))
        {
            return null;
        }
        return new NodeLiveState(nodeId, planned?.Online ?? node.Record.Online, endpoints, planned?.Instance ?? node.Record.Instance, null);
    }

    /// <summary>
    /// The live state of a node going offline (last seen <paramref name="now"/>), or null when it
    /// is offline already (after <paramref name="planned"/>) or gone. Whether it still has a
    /// stream is the caller's to check.
    /// </summary>
    public NodeLiveState? LiveStateOffline(ulong nodeId, DateTimeOffset now, NodeLiveState? planned)
    {
        if (!_nodes.TryGetValue(nodeId, out var node) || !(planned?.Online ?? node.Record.Online))
        {
            return null;
        }
        return new NodeLiveState(nodeId, false, [.. planned?.Endpoints ?? node.Record.Endpoints], planned?.Instance ?? node.Record.Instance, now);
    }

    private void AddNodes(IEnumerable<StoredNode> nodes)
    {
        foreach (var node in nodes)
        {
            var record = NodeRecords.ToProto(node);
            _nodes[node.Id] = new ViewNode(record, node.KeyExpiry, node.Revision, node.TagsRevision);
            _access.Upsert(node.Id, Subject(record));
        }
    }

    private ViewNode Attachable(ulong nodeId, ReadOnlySpan<byte> nodeKey, DateTimeOffset now)
    {
        if (!_nodes.TryGetValue(nodeId, out var node))
        {
            throw Failures.NotRegistered("the node is not registered (it was removed); register again");
        }
        if (!node.Record.NodeKey.Span.SequenceEqual(nodeKey))
        {
            throw Failures.NotRegistered("the node key was replaced by a rotation; use the current key");
        }
        if (node.KeyExpiry <= now)
        {
            throw Failures.NodeKeyExpired();
        }
        return node;
    }

    private static IEnumerable<ulong> Ids(AccessGraph access, NodeBitset nodes)
    {
        foreach (int slot in nodes.Slots())
        {
            yield return access.IdAt(slot);
        }
    }

    private static PolicySubject Subject(Node record) => PolicySubject.ForNode(record.User, record.Tags, record.Addresses);

    /// <summary>The state of one node; guarded like the view.</summary>
    private sealed class ViewNode(Node record, DateTimeOffset keyExpiry, ulong revision, ulong tagsRevision)
    {
        public Node Record { get; set; } = record;

        public DateTimeOffset KeyExpiry { get; set; } = keyExpiry;

        /// <summary>The revision of the last committed change of this node.</summary>
        public ulong Revision { get; set; } = revision;

        /// <summary>The revision of the last change of what the policy matches on it (tags, user).</summary>
        public ulong TagsRevision { get; set; } = tagsRevision;
    }
}
