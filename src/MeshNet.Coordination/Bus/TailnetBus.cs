using System.Security.Cryptography;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Policy;
using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The message bus of one tailnet: the live view of its nodes (records with online state and
/// endpoints) and the map sessions of its nodes. A change produces one small delta, shared by
/// every affected session and wrapped per session with that session's next sequence number,
/// so the work per change is O(sessions of this tailnet), never O(nodes²). Nodes of other
/// tailnets are in other buses and never see this one.
/// </summary>
/// <remarks>
/// <para>Locking: <c>_gate</c> guards the nodes, the sessions and every session's fields; it
/// is held only for in-memory work (no I/O, no awaits). Streams are written with non-blocking
/// <see cref="MapStream.TryWrite"/> under it, so each session's sequence order is the queue
/// order. Wire records (<see cref="Node"/>) may be shared by queued messages and are never
/// mutated: a change replaces the record with a modified clone.</para>
/// <para><see cref="WriteGate"/> orders the tailnet's durable changes: a writer holds it across
/// its store write and the call that publishes the change here, so the bus applies changes in
/// the store's order. The bus itself does no I/O.</para>
/// </remarks>
internal sealed partial class TailnetBus
{
    private static readonly KeepAlive SharedKeepAlive = new();
    private static readonly RpcException Retired = new(new Status(StatusCode.Unavailable, "the tailnet's bus was unloaded; retry"));

    private readonly Lock _gate = new();
    private readonly SortedDictionary<ulong, BusNode> _nodes = [];
    private readonly Dictionary<ulong, MapSession> _sessions = [];
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private RpcException? _closedFailure;
    private AccessGraph _access = new(null, 0);

    public TailnetBus(string tailnet, string domain, BusSettings settings, TimeProvider time, CoordinationCounters counters)
    {
        Tailnet = tailnet;
        Domain = domain;
        _settings = settings;
        _time = time;
        _counters = counters;
    }

    public string Tailnet { get; }

    public string Domain { get; }

    /// <summary>Held by whoever writes this tailnet's durable state and then publishes it here.</summary>
    public SemaphoreSlim WriteGate { get; } = new(1, 1);

    /// <summary>True once the tailnet was deleted or the service stopped.</summary>
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
    /// Fills the bus with the stored nodes (all offline, no endpoints) and the policy in force
    /// (null: none). Called once, before use.
    /// </summary>
    public void Load(IEnumerable<StoredNode> nodes, PolicyDocument? policy = null, ulong policyVersion = 0)
    {
        lock (_gate)
        {
            _access = new AccessGraph(policy, policyVersion);
            foreach (var node in nodes)
            {
                var record = NodeRecords.ToProto(node);
                _nodes[node.Id] = new BusNode(record, node.KeyExpiry);
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

    /// <summary>The node's current wire record (online state and endpoints included), or null.</summary>
    public Node? GetRecord(ulong id)
    {
        lock (_gate)
        {
            return _nodes.TryGetValue(id, out var node) ? node.Record : null;
        }
    }

    public bool IsOnline(ulong id) => GetRecord(id)?.Online == true;

    /// <summary>
    /// Connects a map stream for a node: resumes its session when <paramref name="resumeHandle"/>
    /// names it and every delta after <paramref name="lastSequence"/> is still buffered (only
    /// those are queued, no full netmap), else queues a full netmap. A stream the node already
    /// had is ended (replaced). Peers learn that the node is online and its endpoints.
    /// </summary>
    /// <exception cref="RpcException">The node is gone, its key was replaced or expired, or the resume point is ahead of the session.</exception>
    public MapStream Attach(ulong nodeId, ReadOnlySpan<byte> nodeKey, string resumeHandle, ulong lastSequence,
        IReadOnlyList<string> endpoints, DateTimeOffset now, out bool resumed, string instance = "")
    {
        lock (_gate)
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
            _sessions.TryGetValue(nodeId, out var session);
            bool sameSession = session is not null && resumeHandle.Length > 0 && string.Equals(resumeHandle, session.Handle, StringComparison.Ordinal);
            if (sameSession && lastSequence > session!.LastSequence)
            {
                throw Failures.Invalid($"last_sequence {lastSequence} is ahead of the session (the last message sent was {session.LastSequence})");
            }
            resumed = sameSession && lastSequence > 0 && lastSequence >= session!.ReplayFloor;
            session?.Live?.Terminate(new RpcException(new Status(StatusCode.Aborted, "replaced by a newer map stream of the same node")));
            if (!sameSession)
            {
                session = new MapSession(nodeId, NewHandle(), _settings.ReplayBufferSize);
                _sessions[nodeId] = session;
            }
            var stream = new MapStream(session!, _settings.ReplayBufferSize + _settings.SendQueueSize);
            session!.Live = stream;

            // Online state and endpoints first, so that a full netmap already shows them.
            var patch = new PeerPatch { Id = nodeId };
            bool changed = false;
            if (!node.Record.Online)
            {
                patch.Online = true;
                changed = true;
            }
            if (!node.Record.Endpoints.SequenceEqual(endpoints))
            {
                patch.Endpoints = ToEndpoints(endpoints);
                changed = true;
            }
            if (instance.Length > 0 && !string.Equals(node.Record.Instance, instance, StringComparison.Ordinal))
            {
                patch.Instance = instance; // a restart: peers hand it a new WireGuard session
                changed = true;
            }
            if (changed)
            {
                var record = node.Record.Clone();
                record.Online = true;
                record.Endpoints.Clear();
                record.Endpoints.Add(endpoints);
                if (instance.Length > 0)
                {
                    record.Instance = instance;
                }
                node.Record = record;
            }

            if (resumed)
            {
                Replay(stream, lastSequence);
                _counters.StreamResumed();
            }
            else
            {
                var full = new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle, Full = BuildFullMap(nodeId) };
                session.Ring.Clear();
                session.ReplayFloor = full.Sequence;
                stream.TryWrite(full);
                _counters.FullMapSent();
            }
            if (changed)
            {
                BroadcastToViewers(nodeId, new MapDelta { Patches = { patch } });
            }
            stream.KeepAliveTimer = _time.CreateTimer(static state => ((KeepAliveTick)state!).Fire(), new KeepAliveTick(this, stream),
                _settings.KeepAlive.Next(), Timeout.InfiniteTimeSpan);
            return stream;
        }
    }

    /// <summary>
    /// The stream's call has ended. If it was the node's current stream, the node goes offline
    /// (peers get a patch with its last-seen time) and its session is retained for resume.
    /// </summary>
    /// <returns>True when the node went offline.</returns>
    public bool Detach(MapStream stream, DateTimeOffset now)
    {
        lock (_gate)
        {
            stream.Close();
            var session = stream.Session;
            if (session.Live != stream)
            {
                return false;
            }
            session.Live = null;
            session.DetachedAt = now;
            if (_closedFailure is not null || !_sessions.TryGetValue(session.NodeId, out var current) || current != session ||
                !_nodes.TryGetValue(session.NodeId, out var node))
            {
                return false;
            }
            var lastSeen = Timestamp.FromDateTimeOffset(now);
            var record = node.Record.Clone();
            record.Online = false;
            record.LastSeen = lastSeen;
            node.Record = record;
            BroadcastToViewers(session.NodeId, new MapDelta { Patches = { new PeerPatch { Id = session.NodeId, Online = false, LastSeen = lastSeen } } });
            return true;
        }
    }

    /// <summary>
    /// A node joined, or its durable record changed as a whole (hostname, tags): peers get it
    /// in <c>peers_changed</c>, the node itself in <c>self_changed</c>. Online state, endpoints
    /// and last-seen of a known node are kept.
    /// </summary>
    public void Upsert(StoredNode stored)
    {
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return;
            }
            Node record;
            bool existed = _nodes.TryGetValue(stored.Id, out var existing);
            if (existing is not null)
            {
                record = NodeRecords.ToProto(stored, existing.Record.Online, existing.Record.Endpoints);
                record.LastSeen = existing.Record.LastSeen;
                record.Instance = existing.Record.Instance; // the run id lives on the bus, not in the store
                existing.Record = record;
                existing.KeyExpiry = stored.KeyExpiry;
            }
            else
            {
                record = NodeRecords.ToProto(stored);
                _nodes[stored.Id] = new BusNode(record, stored.KeyExpiry);
            }
            PublishNodeChange(stored.Id, record, existed);
        }
    }

    /// <summary>
    /// The node's key was rotated: peers get a patch with the new key and expiry, the node its
    /// new record. Its streams stay open.
    /// </summary>
    public void RotateKey(ulong id, ReadOnlySpan<byte> newKey, DateTimeOffset keyExpiry)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_nodes.TryGetValue(id, out var node))
            {
                return;
            }
            var key = ByteString.CopyFrom(newKey);
            var expiry = Timestamp.FromDateTimeOffset(keyExpiry);
            var record = node.Record.Clone();
            record.NodeKey = key;
            record.KeyExpiry = expiry;
            node.Record = record;
            node.KeyExpiry = keyExpiry;
            BroadcastToViewers(id, new MapDelta { Patches = { new PeerPatch { Id = id, NodeKey = key, KeyExpiry = expiry } } });
            DeliverToSelf(id, record);
        }
    }

    /// <summary>
    /// Sets the node's key expiry, or announces that it was reached: peers get a patch, the node
    /// its new record; when the expiry has passed, the node's stream ends with
    /// <c>node-key-expired</c> (and it goes offline).
    /// </summary>
    public void SetKeyExpiry(ulong id, DateTimeOffset keyExpiry, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_nodes.TryGetValue(id, out var node))
            {
                return;
            }
            var expiry = Timestamp.FromDateTimeOffset(keyExpiry);
            // A changed expiry, or the moment it is reached (peers already had the time, but
            // hearing it then lets them mark the node expired without a clock of their own).
            if (node.KeyExpiry != keyExpiry || keyExpiry <= now)
            {
                var record = node.Record.Clone();
                record.KeyExpiry = expiry;
                node.Record = record;
                node.KeyExpiry = keyExpiry;
                BroadcastToViewers(id, new MapDelta { Patches = { new PeerPatch { Id = id, KeyExpiry = expiry } } });
                DeliverToSelf(id, record);
            }
            if (keyExpiry <= now && _sessions.TryGetValue(id, out var session))
            {
                session.Live?.Terminate(Failures.NodeKeyExpired());
            }
        }
    }

    /// <summary>The node reported new endpoints: peers get an endpoints patch. False when nothing changed.</summary>
    public bool UpdateEndpoints(ulong id, IReadOnlyList<string> endpoints)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_nodes.TryGetValue(id, out var node) || node.Record.Endpoints.SequenceEqual(endpoints))
            {
                return false;
            }
            var record = node.Record.Clone();
            record.Endpoints.Clear();
            record.Endpoints.Add(endpoints);
            node.Record = record;
            BroadcastToViewers(id, new MapDelta { Patches = { new PeerPatch { Id = id, Endpoints = ToEndpoints(endpoints) } } });
            return true;
        }
    }

    /// <summary>
    /// The node left (deleted, expired ephemeral): peers get <c>peers_removed</c>; its own
    /// stream ends with <paramref name="ownFailure"/> and its session is dropped.
    /// </summary>
    public bool Remove(ulong id, RpcException ownFailure)
    {
        lock (_gate)
        {
            if (!_nodes.Remove(id))
            {
                return false;
            }
            if (_sessions.Remove(id, out var session))
            {
                session.Live?.Terminate(ownFailure);
            }
            PublishRemoval(id);
            return true;
        }
    }

    /// <summary>Ends every stream with <paramref name="failure"/> and refuses new ones (tailnet deleted, service stopping). Idempotent.</summary>
    /// <returns>How many streams were ended.</returns>
    public int Close(RpcException failure)
    {
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            _closedFailure = failure;
            int ended = 0;
            foreach (var session in _sessions.Values)
            {
                if (session.Live is { IsClosed: false } live)
                {
                    live.Terminate(failure);
                    ended++;
                }
            }
            _sessions.Clear();
            return ended;
        }
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

    /// <summary>Forgets sessions disconnected longer than the retention time (they can no longer resume).</summary>
    /// <returns>How many were dropped.</returns>
    public int PruneSessions(DateTimeOffset now)
    {
        lock (_gate)
        {
            List<ulong>? expired = null;
            foreach (var (nodeId, session) in _sessions)
            {
                if (session.Live is null && now - session.DetachedAt >= _settings.SessionRetention)
                {
                    (expired ??= []).Add(nodeId);
                }
            }
            foreach (var nodeId in expired ?? [])
            {
                _sessions.Remove(nodeId);
            }
            return expired?.Count ?? 0;
        }
    }

    private static string NewHandle() => Base64Url(RandomNumberGenerator.GetBytes(16));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static Endpoints ToEndpoints(IReadOnlyList<string> endpoints)
    {
        var wrapper = new Endpoints();
        wrapper.Values.Add(endpoints);
        return wrapper;
    }

    /// <summary>The live state of one node; guarded by the bus lock.</summary>
    private sealed class BusNode(Node record, DateTimeOffset keyExpiry)
    {
        public Node Record { get; set; } = record;

        public DateTimeOffset KeyExpiry { get; set; } = keyExpiry;
    }

    private sealed class KeepAliveTick(TailnetBus bus, MapStream stream)
    {
        public void Fire() => bus.SendKeepAlive(stream);
    }
}
