using System.Security.Cryptography;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The message bus of one tailnet on the server that holds its lease: the view of its nodes
/// (records with online state and endpoints, each stamped with the revision that last changed
/// it), and the map sessions of its nodes. A change produces one small delta, shared by every
/// affected session and wrapped per session with that session's next sequence number, so the
/// work per change is O(sessions of this tailnet), never O(nodes²). Nodes of other tailnets are
/// in other buses and never see this one.
/// </summary>
/// <remarks>
/// <para>Locking: <c>_gate</c> guards the nodes, the sessions and every session's fields; it
/// is held only for in-memory work (no I/O, no awaits). Streams are written with non-blocking
/// <see cref="MapStream.TryWrite"/> under it, so each session's sequence order is the queue
/// order. Wire records (<see cref="Node"/>) may be shared by queued messages and are never
/// mutated: a change replaces the record with a modified clone.</para>
/// <para><see cref="WriteGate"/> orders the tailnet's durable changes: a writer holds it across
/// its fenced store write and the call that publishes the change here (with the write's
/// revision), so the bus applies changes in revision order. The bus itself does no I/O, and
/// publishes only what was committed.</para>
/// <para>Every message carries the bus's <see cref="Epoch"/> and the <see cref="Revision"/> it
/// reflects; a node resuming on another server catches up from there.</para>
/// </remarks>
internal sealed partial class TailnetBus
{
    private static readonly KeepAlive SharedKeepAlive = new();
    private static readonly CoordinationException Retired = Failures.Unavailable("the tailnet's bus was unloaded; retry");

    private readonly Lock _gate = new();
    private readonly SortedDictionary<ulong, BusNode> _nodes = [];
    private readonly Dictionary<ulong, MapSession> _sessions = [];
    private readonly List<(ulong NodeId, ulong Revision)> _removals = [];
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private CoordinationException? _closedFailure;
    private AccessGraph _access = new(null, 0);
    private ulong _revision;
    private ulong _logFloor;
    private ulong _policyRevision;
    private IReadOnlyList<string> _controlUrls = [];
    private readonly QueueBudget _queueBudget;
    private MapDelta? _sizedDelta;
    private int _sizedDeltaBytes;

    public TailnetBus(string tailnet, string domain, ulong epoch, BusSettings settings, TimeProvider time, CoordinationCounters counters)
    {
        Tailnet = tailnet;
        Domain = domain;
        Epoch = epoch;
        _settings = settings;
        _time = time;
        _counters = counters;
        _queueBudget = new QueueBudget(settings.MaxQueuedBytes);
        Changes = new ChangeRateLimiter(settings.ChangesPerSecond, settings.ChangeBurst, time);
        LoadedAt = time.GetTimestamp();
    }

    /// <summary>The tailnet's change budget (charged by writes that nodes or administrators ask for).</summary>
    public ChangeRateLimiter Changes { get; }

    /// <summary>The bytes this tailnet's streams hold queued now.</summary>
    public long QueuedBytes => _queueBudget.Bytes;

    public string Tailnet { get; }

    public string Domain { get; }

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
                return _revision;
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
                return _nodes.Count;
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
                return _sessions.Values.Count(session => session.Live is { IsClosed: false });
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
            _access = new AccessGraph(TailnetHub.ParsePolicy(state.Policy), state.Policy?.Version ?? 0);
            _policyRevision = state.Policy?.Revision ?? 0;
            _revision = state.Revision;
            _logFloor = state.LogFloor;
            _removals.AddRange(state.Removals);
            foreach (var node in state.Nodes)
            {
                var record = NodeRecords.ToProto(node);
                _nodes[node.Id] = new BusNode(record, node.KeyExpiry, node.Revision, node.TagsRevision);
                _access.Upsert(node.Id, Subject(record));
            }
        }
    }

    /// <summary>Fills the bus with stored nodes and a policy (tests: no revisions, no log).</summary>
    public void Load(IEnumerable<StoredNode> nodes, PolicyDocument? policy = null, ulong policyVersion = 0)
    {
        lock (_gate)
        {
            _access = new AccessGraph(policy, policyVersion);
            foreach (var node in nodes)
            {
                var record = NodeRecords.ToProto(node);
                _nodes[node.Id] = new BusNode(record, node.KeyExpiry, node.Revision, node.TagsRevision);
                _access.Upsert(node.Id, Subject(record));
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
                return _access.Policy;
            }
        }
    }

    /// <summary>The coordination servers nodes are told about (full maps, and a delta to every session when it changes).</summary>
    public void SetControlUrls(IReadOnlyList<string> urls)
    {
        ArgumentNullException.ThrowIfNull(urls);
        lock (_gate)
        {
            if (_closedFailure is not null || _controlUrls.SequenceEqual(urls, StringComparer.Ordinal))
            {
                return;
            }
            _controlUrls = urls;
            var wrapper = new ControlUrls();
            wrapper.Values.Add(urls);
            var delta = new MapDelta { ControlUrls = wrapper };
            foreach (var session in _sessions.Values)
            {
                Deliver(session, delta);
            }
        }
    }

    /// <summary>The node's current wire record (online state and endpoints included), or null.</summary>
    public Node? GetRecord(ulong id)
    {
        lock (_gate)
        {
            return _nodes.TryGetValue(id, out var node) ? node.Record : null;
        }
    }

    public bool IsOnline(ulong id) => GetRecord(id)?.Online == true;

    /// <summary>True while the node has a connected stream on this bus.</summary>
    public bool HasLiveStream(ulong id)
    {
        lock (_gate)
        {
            return _sessions.TryGetValue(id, out var session) && session.Live is { IsClosed: false };
        }
    }

    /// <summary>
    /// Connects a map stream for a node: resumes its session from the replay buffer when it holds
    /// every message after <paramref name="lastSequence"/>; otherwise adopts the session the node
    /// names (it was served elsewhere, or before a reload) and catches it up from
    /// <paramref name="lastRevision"/> when the change log covers it; otherwise queues a full
    /// netmap, the sequence continuing. A stream the node already had is ended (replaced).
    /// </summary>
    /// <exception cref="CoordinationException">The node is gone, its key was replaced or expired, or the resume point is ahead of the session.</exception>
    public MapStream Attach(ulong nodeId, ReadOnlySpan<byte> nodeKey, string resumeHandle, ulong lastSequence, ulong lastRevision, DateTimeOffset now,
        out AttachKind kind)
    {
        lock (_gate)
        {
            RequireAttachable(nodeId, nodeKey, now);
            _sessions.TryGetValue(nodeId, out var session);
            bool sameSession = session is not null && resumeHandle.Length > 0 && string.Equals(resumeHandle, session.Handle, StringComparison.Ordinal);
            if (sameSession && lastSequence > session!.LastSequence)
            {
                throw Failures.Invalid($"last_sequence {lastSequence} is ahead of the session (the last message sent was {session.LastSequence})");
            }
            if (session?.Live is not { IsClosed: false } && _settings.MaxStreams != int.MaxValue &&
                _sessions.Values.Count(other => other.Live is { IsClosed: false }) >= _settings.MaxStreams)
            {
                _counters.RateLimitHit();
                throw new CoordinationException(CoordinationErrorCode.RateLimited,
                    $"tailnet '{Tailnet}' has its maximum of {_settings.MaxStreams} map streams open") { RetryAfter = TimeSpan.FromSeconds(5) };
            }
            session?.Live?.Terminate(Failures.Create(CoordinationErrorCode.Conflict, "replaced by a newer map stream of the same node"));
            bool adopted = false;
            if (!sameSession)
            {
                // A session this bus never held (it was served elsewhere, or before a reload) is
                // adopted; a node that has another session here starts a new one.
                adopted = session is null && resumeHandle.Length > 0 && lastSequence > 0;
                session = adopted
                    ? new MapSession(nodeId, resumeHandle, _settings.ReplayBufferSize) { LastSequence = lastSequence, ReplayFloor = lastSequence }
                    : new MapSession(nodeId, NewHandle(), _settings.ReplayBufferSize);
                _sessions[nodeId] = session;
            }
            var stream = new MapStream(session!, _settings.ReplayBufferSize + _settings.SendQueueSize, _queueBudget);
            session!.Live = stream;

            if (sameSession && lastSequence > 0 && lastSequence >= session.ReplayFloor)
            {
                Replay(stream, lastSequence);
                kind = AttachKind.Replayed;
                _counters.StreamResumed();
            }
            else if ((sameSession || adopted) && lastSequence > 0 && lastRevision > 0 && BuildCatchUp(nodeId, lastRevision) is { } catchUp)
            {
                session.Ring.Clear();
                session.ReplayFloor = session.LastSequence;
                var first = Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle });
                if (catchUp.CalculateSize() == 0)
                {
                    first.KeepAlive = SharedKeepAlive;
                }
                else
                {
                    first.Delta = catchUp;
                    session.Ring.Add(first);
                }
                stream.TryWrite(first);
                kind = AttachKind.CaughtUp;
                _counters.StreamResumed();
                _counters.CatchUpSent();
            }
            else
            {
                var full = Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle, Full = BuildFullMap(nodeId) });
                session.Ring.Clear();
                session.ReplayFloor = full.Sequence;
                stream.TryWrite(full);
                kind = AttachKind.Full;
                _counters.FullMapSent();
            }
            stream.KeepAliveTimer = _time.CreateTimer(static state => ((KeepAliveTick)state!).Fire(), new KeepAliveTick(this, stream),
                _settings.KeepAlive.Next(), Timeout.InfiniteTimeSpan);
            return stream;
        }
    }

    /// <summary>The stream's call has ended; if it was the node's current stream, its session is retained for resume.</summary>
    /// <returns>True when the node has no live stream left (the caller then writes it offline).</returns>
    public bool Detach(MapStream stream, DateTimeOffset now)
    {
        lock (_gate)
        {
            stream.Close();
            stream.ReleaseQueued();
            var session = stream.Session;
            if (session.Live != stream)
            {
                return false;
            }
            session.Live = null;
            session.DetachedAt = now;
            session.DetachedTimestamp = _time.GetTimestamp();
            return _closedFailure is null && _sessions.TryGetValue(session.NodeId, out var current) && current == session &&
                _nodes.ContainsKey(session.NodeId);
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
                _nodes[stored.Id] = new BusNode(record, stored.KeyExpiry, revision, revision);
            }
            PublishNodeChange(stored.Id, record, existed);
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
            if (_closedFailure is not null || !_nodes.TryGetValue(id, out var node))
            {
                return;
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
            BroadcastToViewers(id, new MapDelta { Patches = { new PeerPatch { Id = id, NodeKey = key, KeyExpiry = expiry } } });
            DeliverToSelf(id, record);
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
            if (_closedFailure is not null || !_nodes.TryGetValue(id, out var node))
            {
                return;
            }
            Advance(revision);
            var expiry = Timestamp.FromDateTimeOffset(keyExpiry);
            // A changed expiry, or the moment it is reached (peers already had the time, but
            // hearing it then lets them mark the node expired without a clock of their own).
            if (node.KeyExpiry != keyExpiry || keyExpiry <= now)
            {
                var record = node.Record.Clone();
                record.KeyExpiry = expiry;
                node.Record = record;
                node.KeyExpiry = keyExpiry;
                if (revision > 0)
                {
                    node.Revision = revision;
                }
                BroadcastToViewers(id, new MapDelta { Patches = { new PeerPatch { Id = id, KeyExpiry = expiry } } });
                DeliverToSelf(id, record);
            }
            if (keyExpiry <= now && _sessions.TryGetValue(id, out var session))
            {
                session.Live?.Terminate(Failures.NodeKeyExpired());
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
            if (!_nodes.Remove(id))
            {
                return false;
            }
            Advance(revision);
            _removals.Add((id, revision));
            if (_sessions.Remove(id, out var session))
            {
                session.Live?.Terminate(ownFailure);
            }
            PublishRemoval(id);
            return true;
        }
    }

    /// <summary>Checks the node may attach; caller holds the lock.</summary>
    private BusNode RequireAttachable(ulong nodeId, ReadOnlySpan<byte> nodeKey, DateTimeOffset now)
    {
        if (_closedFailure is not null)
        {
            throw _closedFailure;
        }
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

    /// <summary>Moves the bus's revision forward to a committed write's; caller holds the lock.</summary>
    private void Advance(ulong revision)
    {
        if (revision > _revision)
        {
            _revision = revision;
        }
    }

    /// <summary>Stamps a message with the bus's epoch and revision; caller holds the lock.</summary>
    private MapResponse Stamp(MapResponse message)
    {
        message.Epoch = Epoch;
        message.Revision = _revision;
        return message;
    }

    private static string NewHandle() => Base64Url(RandomNumberGenerator.GetBytes(16));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static Endpoints ToEndpoints(IReadOnlyList<string> endpoints)
    {
        var wrapper = new Endpoints();
        wrapper.Values.Add(endpoints);
        return wrapper;
    }

    /// <summary>The state of one node; guarded by the bus lock.</summary>
    private sealed class BusNode(Node record, DateTimeOffset keyExpiry, ulong revision, ulong tagsRevision)
    {
        public Node Record { get; set; } = record;

        public DateTimeOffset KeyExpiry { get; set; } = keyExpiry;

        /// <summary>The revision of the last committed change of this node.</summary>
        public ulong Revision { get; set; } = revision;

        /// <summary>The revision of the last change of what the policy matches on it (tags, user).</summary>
        public ulong TagsRevision { get; set; } = tagsRevision;
    }

    private sealed class KeepAliveTick(TailnetBus bus, MapStream stream)
    {
        public void Fire() => bus.SendKeepAlive(stream);
    }
}
