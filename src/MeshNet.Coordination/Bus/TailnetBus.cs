using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The message bus of one tailnet on the server that holds its lease: the view of its nodes
/// (<see cref="TailnetView"/>: records with online state and endpoints, each stamped with the
/// revision that last changed it, and the policy) and the map sessions of its nodes
/// (<see cref="TailnetSessions"/>). A change updates the view, which returns the deltas of the
/// nodes it affects; the bus hands them to the sessions, which wrap each with that session's next
/// sequence number. One delta is shared by every session that gets it, so the work per change is
/// O(sessions of this tailnet), never O(nodes²). Nodes of other tailnets are in other buses and
/// never see this one.
/// </summary>
/// <remarks>
/// <para>Locking: <c>_gate</c> is the bus's one lock. It guards the view, the sessions (neither is
/// thread-safe on its own) and whether the bus is closed, and is held only for in-memory work (no
/// I/O, no awaits). Streams are written with non-blocking <see cref="MapStream.TryWrite"/> under
/// it, so each session's sequence order is the queue order.</para>
/// <para><see cref="WriteGate"/> orders the tailnet's durable changes: a writer holds it across
/// its fenced store write and the call that publishes the change here (with the write's
/// revision), so the bus applies changes in revision order. The bus itself does no I/O, and
/// publishes only what was committed.</para>
/// <para>Every message carries the bus's <see cref="Epoch"/> and the <see cref="Revision"/> it
/// reflects; a node resuming on another server catches up from there.</para>
/// </remarks>
internal sealed class TailnetBus
{
    private static readonly CoordinationException Retired = Failures.Unavailable("the tailnet's bus was unloaded; retry");

    private readonly Lock _gate = new();
    private readonly TailnetView _view;
    private readonly TailnetSessions _sessions;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private CoordinationException? _closedFailure;

    public TailnetBus(string tailnet, string domain, ulong epoch, BusSettings settings, TimeProvider time, CoordinationCounters counters)
    {
        Tailnet = tailnet;
        Epoch = epoch;
        _time = time;
        _view = new TailnetView(domain);
        _sessions = new TailnetSessions(tailnet, epoch, settings, time, counters, SendKeepAlive);
        _counters = counters;
        Changes = new ChangeRateLimiter(settings.ChangesPerSecond, settings.ChangeBurst, time);
        LoadedAt = time.GetTimestamp();
    }

    /// <summary>The tailnet's change budget (charged by writes that nodes or administrators ask for).</summary>
    public ChangeRateLimiter Changes { get; }

    /// <summary>The bytes this tailnet's streams hold queued now.</summary>
    public long QueuedBytes => _sessions.QueuedBytes;

    public string Tailnet { get; }

    public string Domain => _view.Domain;

    /// <summary>The epoch of the lease this bus serves under (fences its writes, stamps its messages).</summary>
    public ulong Epoch { get; }

    /// <summary>When it was loaded (monotonic timestamp).</summary>
    public long LoadedAt { get; }

    /// <summary>The fence of this bus's writes.</summary>
    public TailnetFence Fence => new(Tailnet, Epoch);

    /// <summary>Held by whoever writes this tailnet's durable state and then publishes it here.</summary>
    public SemaphoreSlim WriteGate { get; } = new(1, 1);

    /// <summary>The tailnet revision of the last change applied.</summary>
    public ulong Revision
    {
        get
        {
            lock (_gate)
            {
                return _view.Revision;
            }
        }
    }

    /// <summary>True once the tailnet was deleted, the lease lost, or the service stopped.</summary>
    public bool IsClosed
    {
        get
        {
            lock (_gate)
            {
                return _closedFailure is not null;
            }
        }
    }

    public int NodeCount
    {
        get
        {
            lock (_gate)
            {
                return _view.NodeCount;
            }
        }
    }

    /// <summary>Sessions kept, connected or retained for resume.</summary>
    public int SessionCount
    {
        get
        {
            lock (_gate)
            {
                return _sessions.Count;
            }
        }
    }

    public int LiveStreamCount
    {
        get
        {
            lock (_gate)
            {
                return _sessions.LiveStreamCount;
            }
        }
    }

    /// <summary>The policy in force (null: everything inside the tailnet is allowed).</summary>
    public PolicyDocument? Policy
    {
        get
        {
            lock (_gate)
            {
                return _view.Policy;
            }
        }
    }

    /// <summary>
    /// Fills the bus from a snapshot of the store: nodes with their live state and revisions, the
    /// policy in force, removals after the log floor. Called once, before use.
    /// </summary>
    public void Load(StoredTailnetState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        lock (_gate)
        {
            _view.Load(state);
        }
    }

    /// <summary>Fills the bus with stored nodes and a policy (tests: no revisions, no log).</summary>
    public void Load(IEnumerable<StoredNode> nodes, PolicyDocument? policy = null, ulong policyVersion = 0)
    {
        lock (_gate)
        {
            _view.Load(nodes, policy, policyVersion);
        }
    }

    /// <summary>The coordination servers nodes are told about (full maps, and a delta to every session when it changes).</summary>
    public void SetControlUrls(IReadOnlyList<string> urls)
    {
        ArgumentNullException.ThrowIfNull(urls);
        lock (_gate)
        {
            if (_closedFailure is null && _view.SetControlUrls(urls) is { } delta)
            {
                _sessions.DeliverToAll(delta, _view.Revision);
            }
        }
    }

    /// <summary>The node's current wire record (online state and endpoints included), or null.</summary>
    public Node? GetRecord(ulong id)
    {
        lock (_gate)
        {
            return _view.Record(id);
        }
    }

    public bool IsOnline(ulong id) => GetRecord(id)?.Online == true;

    /// <summary>True while the node has a connected stream on this bus.</summary>
    public bool HasLiveStream(ulong id)
    {
        lock (_gate)
        {
            return _sessions.HasLiveStream(id);
        }
    }

    /// <summary>
    /// Connects a map stream for a node: resumes its session from the replay buffer when it holds
    /// every message after <paramref name="lastSequence"/>; otherwise adopts the session the node
    /// names (it was served elsewhere, or before a reload) and catches it up from
    /// <paramref name="lastRevision"/> when the change log covers it; otherwise queues a full
    /// netmap, the sequence continuing. A stream the node already had is ended (replaced).
    /// </summary>
    /// <exception cref="CoordinationException">The node is gone, its key was replaced or expired, the resume point is ahead of the session, or the tailnet has its maximum of streams open.</exception>
    public MapStream Attach(ulong nodeId, ReadOnlySpan<byte> nodeKey, string resumeHandle, ulong lastSequence, ulong lastRevision, DateTimeOffset now,
        out AttachKind kind)
    {
        lock (_gate)
        {
            RequireOpen();
            _view.RequireAttachable(nodeId, nodeKey, now);
            return _sessions.Attach(nodeId, resumeHandle, lastSequence, lastRevision, _view.Revision, _view.BuildCatchUp, _view.BuildFullMap, out kind);
        }
    }

    /// <summary>The stream's call has ended; if it was the node's current stream, its session is retained for resume.</summary>
    /// <returns>True when the node has no live stream left (the caller then writes it offline).</returns>
    public bool Detach(MapStream stream, DateTimeOffset now)
    {
        lock (_gate)
        {
            return _sessions.Detach(stream, now) && _closedFailure is null && _view.Contains(stream.NodeId);
        }
    }

    /// <summary>
    /// A node joined, or its durable record changed as a whole (hostname, tags): peers get it
    /// in <c>peers_changed</c>, the node itself in <c>self_changed</c>. Live state of a known
    /// node is kept.
    /// </summary>
    public void Upsert(StoredNode stored, ulong revision)
    {
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return;
            }
            DeliverEach(_view.Upsert(stored, revision, _sessions.Contains));
        }
    }

    /// <summary>
    /// The node's key was rotated: peers get a patch with the new key and expiry, the node its
    /// new record. Its streams stay open.
    /// </summary>
    public void RotateKey(ulong id, ReadOnlySpan<byte> newKey, DateTimeOffset keyExpiry, ulong revision)
    {
        lock (_gate)
        {
            if (_closedFailure is null && _view.RotateKey(id, newKey, keyExpiry, revision) is { } change)
            {
                BroadcastToViewers(id, change.Patch);
                _sessions.DeliverToSelf(id, change.Self, _view.Revision);
            }
        }
    }

    /// <summary>
    /// Sets the node's key expiry (a committed write at <paramref name="revision"/>), or announces
    /// that it was reached (<paramref name="revision"/> 0: nothing written): peers get a patch, the
    /// node its new record; when the expiry has passed, the node's stream ends with
    /// <c>node-key-expired</c>.
    /// </summary>
    public void SetKeyExpiry(ulong id, DateTimeOffset keyExpiry, DateTimeOffset now, ulong revision = 0)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_view.Contains(id))
            {
                return;
            }
            if (_view.SetKeyExpiry(id, keyExpiry, now, revision) is { } change)
            {
                BroadcastToViewers(id, change.Patch);
                _sessions.DeliverToSelf(id, change.Self, _view.Revision);
            }
            if (keyExpiry <= now)
            {
                _sessions.Terminate(id, Failures.NodeKeyExpired());
            }
        }
    }

    /// <summary>
    /// The node left (deleted, expired ephemeral): peers get <c>peers_removed</c>; its own
    /// stream ends with <paramref name="ownFailure"/> and its session is dropped.
    /// </summary>
    public bool Remove(ulong id, ulong revision, CoordinationException ownFailure)
    {
        lock (_gate)
        {
            if (_view.Remove(id, revision, _sessions.Contains) is not { } deltas)
            {
                return false;
            }
            _sessions.Remove(id, ownFailure);
            if (_closedFailure is null)
            {
                DeliverEach(deltas);
            }
            return true;
        }
    }

    /// <summary>
    /// Puts a new policy in force (null: none, everything allowed) and sends each node whose
    /// view changed ONE delta: newly visible peers (full records), peers no longer visible,
    /// changed and removed filter chunks, <c>filter_enforced</c> when enforcement starts or
    /// stops, <c>netmap_cache_forbidden</c> when that changes for the node, and the policy
    /// version. Nodes whose view did not change get only the new version (one small delta shared
    /// by all of them), so that every node can report which policy it enforces. Compiles once
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
            var (affected, deltas, versionOnly) = _view.SetPolicy(policy, version, revision, _sessions.Contains);
            foreach (var (nodeId, delta) in deltas)
            {
                _sessions.Deliver(nodeId, delta, _view.Revision);
                if (!ReferenceEquals(delta, versionOnly))
                {
                    _counters.PolicyDeltaSent();
                }
            }
            return affected;
        }
    }

    /// <summary>
    /// Checks that the node may open a map stream (registered, current key, key not expired) and
    /// returns the live state it will have once connected, or null when that is what the bus
    /// already has (nothing to write).
    /// </summary>
    /// <param name="nodeId">The node.</param>
    /// <param name="nodeKey">The key it calls with.</param>
    /// <param name="endpoints">The endpoints it reports.</param>
    /// <param name="instance">Its run id (empty: keep the one known).</param>
    /// <param name="now">The time, for the key expiry.</param>
    /// <param name="planned">A state of the node queued before this one and not written yet (<see cref="LiveStateWriter"/>): the answer is relative to it.</param>
    /// <exception cref="CoordinationException">The node is gone, its key was replaced or expired, or the bus is closed.</exception>
    public NodeLiveState? LiveStateOnAttach(ulong nodeId, ReadOnlySpan<byte> nodeKey, IReadOnlyList<string> endpoints, string instance, DateTimeOffset now,
        NodeLiveState? planned = null)
    {
        lock (_gate)
        {
            RequireOpen();
            return _view.LiveStateOnAttach(nodeId, nodeKey, endpoints, instance, now, planned);
        }
    }

    /// <summary>The live state after an endpoint report (relative to <paramref name="planned"/>, a state queued before it and not written yet), or null when nothing changes.</summary>
    public NodeLiveState? LiveStateOnEndpoints(ulong nodeId, IReadOnlyList<string> endpoints, NodeLiveState? planned = null)
    {
        lock (_gate)
        {
            return _closedFailure is null ? _view.LiveStateOnEndpoints(nodeId, endpoints, planned) : null;
        }
    }

    /// <summary>
    /// The live state of a node whose stream ended and that has no other stream: offline, last
    /// seen <paramref name="now"/>. Null when it has a live stream, is offline already (after
    /// <paramref name="planned"/>, a state queued before it and not written yet), or is gone.
    /// </summary>
    public NodeLiveState? LiveStateOffline(ulong nodeId, DateTimeOffset now, NodeLiveState? planned = null)
    {
        lock (_gate)
        {
            return _closedFailure is null && !_sessions.HasLiveStream(nodeId) ? _view.LiveStateOffline(nodeId, now, planned) : null;
        }
    }

    /// <summary>Nodes marked online that have had no stream here for <paramref name="grace"/> since the bus loaded (their owner changed, and they did not come back).</summary>
    public IReadOnlyList<ulong> OnlineWithoutStream(TimeSpan grace)
    {
        if (_time.GetElapsedTime(LoadedAt) < grace)
        {
            return [];
        }
        lock (_gate)
        {
            return [.. _view.OnlineNodes().Where(id => !_sessions.StreamWithin(id, grace))];
        }
    }

    /// <summary>
    /// Committed live state (revision <paramref name="revision"/>): each node's record changes and
    /// the peers that see it get one patch (online, endpoints, run id, last seen).
    /// </summary>
    public void ApplyLive(IReadOnlyList<NodeLiveState> states, ulong revision)
    {
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return;
            }
            foreach (var (nodeId, patch) in _view.ApplyLive(states, revision))
            {
                BroadcastToViewers(nodeId, patch);
            }
        }
    }

    /// <summary>The nodes marked online (a snapshot): on a bus just loaded after a takeover, those the old owner had connected.</summary>
    public IReadOnlyList<ulong> OnlineNodes()
    {
        lock (_gate)
        {
            return _view.OnlineNodes();
        }
    }

    /// <summary>Ends every stream with <paramref name="failure"/> and refuses new ones (tailnet deleted, lease lost, service stopping). Idempotent.</summary>
    /// <returns>How many streams were ended.</returns>
    public int Close(CoordinationException failure) => Close(_ => failure);

    /// <summary>Like <see cref="Close(CoordinationException)"/>, with a failure per stream (redirects spread over a window).</summary>
    public int Close(Func<MapStream, CoordinationException> failureOf)
    {
        List<MapStream> live;
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            _closedFailure = Failures.Unavailable("the tailnet's bus was closed");
            live = _sessions.TakeLive(stopKeepAlives: false);
        }
        foreach (var stream in live)
        {
            stream.Terminate(failureOf(stream));
        }
        return live.Count;
    }

    /// <summary>
    /// Closes the bus now (no new streams, nothing more published) and ends each live stream at a
    /// random moment within <paramref name="window"/>, so that the nodes of a handed-over tailnet
    /// reach the new owner spread out rather than all at once. What was queued is still sent
    /// before each stream ends.
    /// </summary>
    /// <returns>How many streams will be ended.</returns>
    public int CloseSpread(Func<MapStream, CoordinationException> failureOf, TimeSpan window, Random random)
    {
        List<MapStream> live;
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            _closedFailure = Failures.Unavailable("the tailnet's bus was closed");
            live = _sessions.TakeLive(stopKeepAlives: true);
        }
        _sessions.EndSpread(live, failureOf, window, random);
        return live.Count;
    }

    /// <summary>True once <see cref="TryRetire"/> succeeded: callers retry on a freshly loaded bus.</summary>
    public bool IsRetired
    {
        get
        {
            lock (_gate)
            {
                return _closedFailure == Retired;
            }
        }
    }

    /// <summary>Closes the bus if it has no sessions (connected or retained). The caller holds the write gate.</summary>
    public bool TryRetire()
    {
        lock (_gate)
        {
            if (_closedFailure is not null || _sessions.Count > 0)
            {
                return false;
            }
            _closedFailure = Retired;
            return true;
        }
    }

    /// <summary>Forgets sessions disconnected longer than the retention time (they resume from the change log afterwards).</summary>
    /// <returns>How many were dropped.</returns>
    public int PruneSessions(DateTimeOffset now)
    {
        lock (_gate)
        {
            return _sessions.Prune(now);
        }
    }

    /// <summary>A stream's keep-alive is due (a timer thread).</summary>
    private void SendKeepAlive(MapStream stream)
    {
        lock (_gate)
        {
            _sessions.SendKeepAlive(stream, _view.Revision);
        }
    }

    /// <summary>Throws when the bus is closed; caller holds the lock.</summary>
    private void RequireOpen()
    {
        if (_closedFailure is not null)
        {
            throw _closedFailure;
        }
    }

    /// <summary>Delivers a patch of node <paramref name="nodeId"/> to the sessions of the nodes that see it; caller holds the lock.</summary>
    private void BroadcastToViewers(ulong nodeId, MapDelta patch) => _sessions.Broadcast(nodeId, patch, _view.ViewersOf(nodeId), _view.Revision);

    /// <summary>Delivers deltas addressed to single nodes, in order; caller holds the lock.</summary>
    private void DeliverEach(List<(ulong NodeId, MapDelta Delta)> deltas)
    {
        foreach (var (nodeId, delta) in deltas)
        {
            _sessions.Deliver(nodeId, delta, _view.Revision);
        }
    }
}
