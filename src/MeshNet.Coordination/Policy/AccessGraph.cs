using MeshNet.Control.V1;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// The compiled policy of one tailnet over its nodes: which rules each node is a source or a
/// destination of (node-set bitsets per rule), from which follow the peers a node may see (M is
/// visible to N iff a rule lets N reach M or M reach N) and the filter chunks it enforces. Nodes
/// sharing the same rule memberships share one visibility set; chunks are shared by every node
/// with the same rule and destinations. With no policy, everyone sees everyone and there are
/// no chunks.
/// </summary>
/// <remarks>
/// Not thread-safe: the owning bus's lock guards it. Sets and chunks handed out are never
/// modified afterwards. A node's change costs O(rules × selectors) plus the rules whose source
/// list it changes (rebuilt once, O(their sources)); never O(nodes²).
/// </remarks>
internal sealed class AccessGraph
{
    private readonly Dictionary<ulong, int> _slotOf;
    private readonly List<ulong> _ids;
    private readonly List<PolicySubject?> _subjects;
    private readonly List<Membership?> _members;
    private readonly Stack<int> _free;
    private readonly RuleState[] _rules;
    private readonly Dictionary<string, NodeBitset> _visibleCache = new(StringComparer.Ordinal);
    private NodeBitset? _all;

    public AccessGraph(PolicyDocument? policy, ulong version)
        : this(policy, version, [], [], [], new Stack<int>())
    {
    }

    private AccessGraph(PolicyDocument? policy, ulong version, Dictionary<ulong, int> slotOf, List<ulong> ids, List<PolicySubject?> subjects, Stack<int> free)
    {
        Policy = policy;
        Version = policy is null ? 0 : version;
        _slotOf = slotOf;
        _ids = ids;
        _subjects = subjects;
        _free = free;
        _members = [.. Enumerable.Repeat<Membership?>(null, ids.Count)];
        _rules = policy is null ? [] : [.. policy.Rules.Select(rule => new RuleState(rule))];
        for (int slot = 0; slot < _ids.Count; slot++)
        {
            if (_subjects[slot] is { } subject)
            {
                Attach(slot, Compute(subject));
            }
        }
    }

    /// <summary>The policy in force (null: everything allowed).</summary>
    public PolicyDocument? Policy { get; }

    /// <summary>The policy's version (0 when there is none).</summary>
    public ulong Version { get; }

    public bool Enforced => Policy is not null;

    public int Count => _slotOf.Count;

    /// <summary>The same nodes (same slots) under another policy.</summary>
    public AccessGraph WithPolicy(PolicyDocument? policy, ulong version) =>
        new(policy, version, new Dictionary<ulong, int>(_slotOf), [.. _ids], [.. _subjects], new Stack<int>(_free.Reverse()));

    public bool TryGetSlot(ulong id, out int slot) => _slotOf.TryGetValue(id, out slot);

    /// <summary>True when the policy forbids the node to keep its netmap on disk.</summary>
    public bool NetmapCacheForbidden(ulong id) =>
        Policy is { } policy && _slotOf.TryGetValue(id, out int slot) && _subjects[slot] is { } subject && policy.ForbidsNetmapCache(subject);

    public ulong IdAt(int slot) => _ids[slot];

    /// <summary>The slots of the nodes <paramref name="id"/> may see (possibly its own; callers skip it). Do not modify.</summary>
    public NodeBitset Visible(ulong id)
    {
        if (!_slotOf.TryGetValue(id, out int slot))
        {
            return NodeBitset.Empty;
        }
        if (Policy is null)
        {
            return _all ??= AllSlots();
        }
        var membership = _members[slot]!;
        if (_visibleCache.TryGetValue(membership.VisibilityKey, out var cached))
        {
            return cached;
        }
        var visible = new NodeBitset(_ids.Count);
        foreach (int rule in membership.SourceRules)
        {
            visible.UnionWith(_rules[rule].Destinations);
        }
        foreach (var target in membership.DestinationRules)
        {
            visible.UnionWith(_rules[target.Rule].Sources);
        }
        _visibleCache[membership.VisibilityKey] = visible;
        return visible;
    }

    /// <summary>The chunks node <paramref name="id"/> enforces, in rule order.</summary>
    public IReadOnlyList<CompiledChunk> Chunks(ulong id)
    {
        if (Policy is null || !_slotOf.TryGetValue(id, out int slot))
        {
            return [];
        }
        var chunks = new List<CompiledChunk>();
        foreach (var target in _members[slot]!.DestinationRules)
        {
            if (Chunk(target) is { } chunk)
            {
                chunks.Add(chunk);
            }
        }
        return chunks;
    }

    /// <summary>Node <paramref name="id"/>'s chunk of <paramref name="rule"/>: the current one, or null when it has none.</summary>
    public CompiledChunk? ChunkOf(ulong id, int rule)
    {
        if (!_slotOf.TryGetValue(id, out int slot))
        {
            return null;
        }
        foreach (var target in _members[slot]!.DestinationRules)
        {
            if (target.Rule == rule)
            {
                return Chunk(target);
            }
        }
        return null;
    }

    public string ChunkName(int rule) => _rules[rule].Rule.ChunkName;

    /// <summary>The ids of the destination nodes of <paramref name="rule"/>.</summary>
    public IEnumerable<ulong> DestinationsOf(int rule) => _rules[rule].Destinations.Slots().Select(slot => _ids[slot]);

    /// <summary>
    /// Adds a node or replaces its user and tags. Returns the rules whose source list changed
    /// (every destination of those gets a new chunk).
    /// </summary>
    public IReadOnlyList<int> Upsert(ulong id, PolicySubject subject)
    {
        if (!_slotOf.TryGetValue(id, out int slot))
        {
            slot = _free.Count > 0 ? _free.Pop() : _ids.Count;
            if (slot == _ids.Count)
            {
                _ids.Add(0);
                _subjects.Add(null);
                _members.Add(null);
            }
            _slotOf[id] = slot;
            _ids[slot] = id;
            _all = null;
        }
        _subjects[slot] = subject;
        var old = _members[slot];
        if (Policy is null)
        {
            return [];
        }
        var updated = Compute(subject);
        if (old is not null && old.Key == updated.Key)
        {
            _members[slot] = updated;
            return [];
        }
        var changed = Detach(slot, old);
        Attach(slot, updated);
        return ChangedSources(changed, updated);
    }

    /// <summary>Removes a node; returns the rules whose source list changed.</summary>
    public IReadOnlyList<int> Remove(ulong id)
    {
        if (!_slotOf.Remove(id, out int slot))
        {
            return [];
        }
        var old = _members[slot];
        _ids[slot] = 0;
        _subjects[slot] = null;
        _members[slot] = null;
        _free.Push(slot);
        _all = null;
        if (Policy is null)
        {
            return [];
        }
        var changed = Detach(slot, old);
        return ChangedSources(changed, null);
    }

    private List<int> ChangedSources(HashSet<int> before, Membership? after)
    {
        var now = after?.NamedSourceRules ?? [];
        var changed = new List<int>();
        foreach (int rule in before)
        {
            if (!now.Contains(rule))
            {
                changed.Add(rule);
            }
        }
        foreach (int rule in now)
        {
            if (!before.Contains(rule))
            {
                changed.Add(rule);
            }
        }
        foreach (int rule in changed)
        {
            _rules[rule].Invalidate();
        }
        // A rule with a "*" source sends "*" whoever joins: its chunks do not change.
        changed.RemoveAll(rule => _rules[rule].AnySource);
        changed.Sort();
        return changed;
    }

    /// <summary>Takes the slot out of its rules; returns the rules it contributed source addresses to.</summary>
    private HashSet<int> Detach(int slot, Membership? membership)
    {
        _visibleCache.Clear();
        if (membership is null)
        {
            return [];
        }
        foreach (int rule in membership.SourceRules)
        {
            _rules[rule].Sources.Remove(slot);
        }
        foreach (int rule in membership.NamedSourceRules)
        {
            _rules[rule].Named.Remove(slot);
        }
        foreach (var target in membership.DestinationRules)
        {
            _rules[target.Rule].Destinations.Remove(slot);
        }
        return [.. membership.NamedSourceRules];
    }

    private void Attach(int slot, Membership membership)
    {
        _visibleCache.Clear();
        _members[slot] = membership;
        foreach (int rule in membership.SourceRules)
        {
            _rules[rule].Sources.Add(slot);
        }
        foreach (int rule in membership.NamedSourceRules)
        {
            _rules[rule].Named.Add(slot);
        }
        foreach (var target in membership.DestinationRules)
        {
            _rules[target.Rule].Destinations.Add(slot);
        }
    }

    private Membership Compute(PolicySubject subject)
    {
        var sources = new List<int>();
        var named = new List<int>();
        var destinations = new List<RuleTarget>();
        for (int index = 0; index < _rules.Length; index++)
        {
            var rule = _rules[index].Rule;
            bool inSources = false, contributes = false;
            foreach (var selector in rule.Sources)
            {
                if (selector.Matches(subject))
                {
                    inSources = true;
                    contributes |= selector.NamesNodes;
                    if (contributes)
                    {
                        break;
                    }
                }
            }
            if (inSources)
            {
                sources.Add(index);
            }
            if (contributes)
            {
                named.Add(index);
            }
            List<(string Prefix, PortSpan Ports)>? ports = null;
            foreach (var destination in rule.Destinations)
            {
                if (destination.Selector.Matches(subject))
                {
                    var prefix = destination.Selector.Kind == SelectorKind.Prefix ? destination.Selector.Prefix.ToString() : "*";
                    ports ??= [];
                    foreach (var span in destination.Ports)
                    {
                        if (!ports.Contains((prefix, span)))
                        {
                            ports.Add((prefix, span));
                        }
                    }
                }
            }
            if (ports is not null)
            {
                destinations.Add(new RuleTarget(index, string.Join(' ', ports.Select(p => $"{p.Prefix}:{p.Ports}")), ports));
            }
        }
        return new Membership([.. sources], [.. named], [.. destinations]);
    }

    private CompiledChunk? Chunk(RuleTarget target)
    {
        var state = _rules[target.Rule];
        var sources = state.SourceList(this);
        if (sources.Count == 0)
        {
            return null;
        }
        if (!state.Chunks.TryGetValue(target.Key, out var chunk))
        {
            var rule = new FilterRule();
            rule.Sources.Add(sources);
            rule.Protocols.Add(state.Rule.Protocols);
            foreach (var (prefix, span) in target.Ports)
            {
                rule.Destinations.Add(new PortRange { Prefix = prefix, FirstPort = span.First, LastPort = span.Last });
            }
            chunk = new CompiledChunk(new FilterChunk { Name = state.Rule.ChunkName, Rules = { rule } });
            state.Chunks[target.Key] = chunk;
        }
        return chunk;
    }

    private NodeBitset AllSlots()
    {
        var all = new NodeBitset(_ids.Count);
        foreach (int slot in _slotOf.Values)
        {
            all.Add(slot);
        }
        return all;
    }

    /// <summary>A node's part in one rule as a destination: its destinations key and port ranges.</summary>
    private sealed record RuleTarget(int Rule, string Key, List<(string Prefix, PortSpan Ports)> Ports);

    /// <summary>The rules a node takes part in; <see cref="Key"/> identifies it, <see cref="VisibilityKey"/> its peers.</summary>
    private sealed class Membership
    {
        public Membership(int[] sourceRules, int[] namedSourceRules, RuleTarget[] destinationRules)
        {
            SourceRules = sourceRules;
            NamedSourceRules = namedSourceRules;
            DestinationRules = destinationRules;
            VisibilityKey = $"s{string.Join(',', sourceRules)}d{string.Join(',', destinationRules.Select(t => t.Rule))}";
            Key = $"{VisibilityKey}n{string.Join(',', namedSourceRules)}t{string.Join('|', destinationRules.Select(t => t.Key))}";
        }

        public int[] SourceRules { get; }

        public int[] NamedSourceRules { get; }

        public RuleTarget[] DestinationRules { get; }

        public string VisibilityKey { get; }

        public string Key { get; }
    }

    /// <summary>Per rule: its node sets and its source list and chunks, rebuilt when its named sources change.</summary>
    private sealed class RuleState(PolicyRule rule)
    {
        private List<string>? _sourceList;

        public PolicyRule Rule { get; } = rule;

        public bool AnySource { get; } = rule.Sources.Any(selector => selector.Kind == SelectorKind.All);

        public NodeBitset Sources { get; } = new();

        public NodeBitset Named { get; } = new();

        public NodeBitset Destinations { get; } = new();

        public Dictionary<string, CompiledChunk> Chunks { get; } = new(StringComparer.Ordinal);

        public void Invalidate()
        {
            _sourceList = null;
            Chunks.Clear();
        }

        /// <summary>"*", or the rule's prefixes as given, then the addresses of named nodes by node id.</summary>
        public List<string> SourceList(AccessGraph graph)
        {
            if (_sourceList is not null)
            {
                return _sourceList;
            }
            var list = new List<string>();
            if (AnySource)
            {
                list.Add("*");
                return _sourceList = list;
            }
            foreach (var selector in Rule.Sources)
            {
                if (selector.Kind == SelectorKind.Prefix && !list.Contains(selector.Prefix.ToString()))
                {
                    list.Add(selector.Prefix.ToString());
                }
            }
            var named = Named.Slots().Select(slot => (Id: graph._ids[slot], Slot: slot)).OrderBy(node => node.Id);
            foreach (var (_, slot) in named)
            {
                foreach (var address in graph._subjects[slot]!.Addresses)
                {
                    list.Add(address.ToString());
                }
            }
            return _sourceList = list;
        }
    }
}
