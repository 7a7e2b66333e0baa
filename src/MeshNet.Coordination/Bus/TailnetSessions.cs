using System.Security.Cryptography;
using MeshNet.Control.V1;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The map sessions of one tailnet's nodes on the server that serves it: at most one
/// <see cref="MapSession"/> per node (connected, or retained for resume), its live
/// <see cref="MapStream"/>, and what goes onto it: the first message of a stream (a replay, a
/// catch-up or a full netmap, built by the caller), deltas wrapped with the session's next
/// sequence number, and keep-alives. Every message is stamped with the bus's epoch and the
/// revision it reflects. Enforces the tailnet's cap on open streams and its
/// <see cref="QueueBudget"/>; a stream that does not keep up is ended (the client resumes).
/// </summary>
/// <remarks>
/// Not thread-safe: owned by one <see cref="TailnetBus"/> and used only under its lock (in-memory
/// work only). Streams are written with the non-blocking <see cref="MapStream.TryWrite"/>, so each
/// session's sequence order is its queue order. Keep-alive timers call back into the bus
/// (<c>keepAliveDue</c>), which takes its lock and then calls <see cref="SendKeepAlive"/>.
/// </remarks>
internal sealed class TailnetSessions
{
    private static readonly KeepAlive SharedKeepAlive = new();

    private readonly Dictionary<ulong, MapSession> _sessions = [];
    private readonly string _tailnet;
    private readonly ulong _epoch;
    private readonly BusSettings _settings;
    private readonly TimeProvider _time;
    private readonly CoordinationCounters _counters;
    private readonly QueueBudget _queueBudget;
    private readonly Action<MapStream> _keepAliveDue;
    private MapDelta? _sizedDelta;
    private int _sizedDeltaBytes;

    /// <param name="tailnet">The tailnet (for messages).</param>
    /// <param name="epoch">The epoch every message carries.</param>
    /// <param name="settings">Replay and queue sizes, retention, keep-alives, the stream cap and the queued-bytes budget.</param>
    /// <param name="time">The clock of keep-alives and retention.</param>
    /// <param name="counters">The service's counters.</param>
    /// <param name="keepAliveDue">Called on a timer thread when a stream's keep-alive is due; takes the bus lock, then calls <see cref="SendKeepAlive"/>.</param>
    public TailnetSessions(string tailnet, ulong epoch, BusSettings settings, TimeProvider time, CoordinationCounters counters, Action<MapStream> keepAliveDue)
    {
        _tailnet = tailnet;
        _epoch = epoch;
        _settings = settings;
        _time = time;
        _counters = counters;
        _keepAliveDue = keepAliveDue;
        _queueBudget = new QueueBudget(settings.MaxQueuedBytes);
    }

    /// <summary>The bytes the streams hold queued now (thread-safe: the budget is interlocked).</summary>
    public long QueuedBytes => _queueBudget.Bytes;

    /// <summary>Sessions kept, connected or retained for resume.</summary>
    public int Count => _sessions.Count;

    public int LiveStreamCount => _sessions.Values.Count(session => session.Live is { IsClosed: false });

    /// <summary>True when the node has a session (connected or retained).</summary>
    public bool Contains(ulong nodeId) => _sessions.ContainsKey(nodeId);

    /// <summary>True while the node has a connected stream.</summary>
    public bool HasLiveStream(ulong nodeId) => _sessions.TryGetValue(nodeId, out var session) && session.Live is { IsClosed: false };

    /// <summary>True while the node has a connected stream, or its last one ended less than <paramref name="grace"/> ago.</summary>
    public bool StreamWithin(ulong nodeId, TimeSpan grace) =>
        _sessions.TryGetValue(nodeId, out var session) && (session.Live is { IsClosed: false } || _time.GetElapsedTime(session.DetachedTimestamp) < grace);

    /// <summary>
    /// Connects a map stream for a node that may attach: resumes its session from the replay
    /// buffer when it holds every message after <paramref name="lastSequence"/>; otherwise adopts
    /// the session the node names (it was served elsewhere, or before a reload) and catches it up
    /// with <paramref name="catchUp"/>(node, <paramref name="lastRevision"/>) when that is not
    /// null; otherwise queues <paramref name="fullMap"/>(node), the sequence continuing. A stream
    /// the node already had is ended (replaced).
    /// </summary>
    /// <exception cref="CoordinationException">The resume point is ahead of the session, or the tailnet has its maximum of streams open.</exception>
    public MapStream Attach(ulong nodeId, string resumeHandle, ulong lastSequence, ulong lastRevision, ulong revision,
        Func<ulong, ulong, MapDelta?> catchUp, Func<ulong, FullMap> fullMap, out AttachKind kind)
    {
        _sessions.TryGetValue(nodeId, out var session);
        bool sameSession = session is not null && resumeHandle.Length > 0 && string.Equals(resumeHandle, session.Handle, StringComparison.Ordinal);
        if (sameSession && lastSequence > session!.LastSequence)
        {
            throw Failures.Invalid($"last_sequence {lastSequence} is ahead of the session (the last message sent was {session.LastSequence})");
        }
        if (session?.Live is not { IsClosed: false } && _settings.MaxStreams != int.MaxValue && LiveStreamCount >= _settings.MaxStreams)
        {
            _counters.RateLimitHit();
            throw new CoordinationException(CoordinationErrorCode.RateLimited,
                $"tailnet '{_tailnet}' has its maximum of {_settings.MaxStreams} map streams open") { RetryAfter = TimeSpan.FromSeconds(5) };
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
            Replay(stream, lastSequence, revision);
            kind = AttachKind.Replayed;
            _counters.StreamResumed();
        }
        else if ((sameSession || adopted) && lastSequence > 0 && lastRevision > 0 && catchUp(nodeId, lastRevision) is { } delta)
        {
            session.Ring.Clear();
            session.ReplayFloor = session.LastSequence;
            var first = Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle }, revision);
            if (delta.CalculateSize() == 0)
            {
                first.KeepAlive = SharedKeepAlive;
            }
            else
            {
                first.Delta = delta;
                session.Ring.Add(first);
            }
            stream.TryWrite(first);
            kind = AttachKind.CaughtUp;
            _counters.StreamResumed();
            _counters.CatchUpSent();
        }
        else
        {
            var full = Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle, Full = fullMap(nodeId) }, revision);
            session.Ring.Clear();
            session.ReplayFloor = full.Sequence;
            stream.TryWrite(full);
            kind = AttachKind.Full;
            _counters.FullMapSent();
        }
        stream.KeepAliveTimer = _time.CreateTimer(static state => ((KeepAliveTick)state!).Fire(), new KeepAliveTick(_keepAliveDue, stream),
            _settings.KeepAlive.Next(), Timeout.InfiniteTimeSpan);
        return stream;
    }

    /// <summary>The stream's call has ended; if it was its node's current stream, the session is retained for resume.</summary>
    /// <returns>True when it was the current stream of a session still held here (the node has no live stream left).</returns>
    public bool Detach(MapStream stream, DateTimeOffset now)
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
        return _sessions.TryGetValue(session.NodeId, out var current) && current == session;
    }

    /// <summary>Delivers <paramref name="delta"/> to the node's session, if it has one.</summary>
    public void Deliver(ulong nodeId, MapDelta delta, ulong revision)
    {
        if (_sessions.TryGetValue(nodeId, out var session))
        {
            Deliver(session, delta, revision);
        }
    }

    /// <summary>Delivers the node's own new record to its session, if it has one.</summary>
    public void DeliverToSelf(ulong nodeId, Node record, ulong revision)
    {
        if (_sessions.TryGetValue(nodeId, out var session))
        {
            Deliver(session, new MapDelta { SelfChanged = record }, revision);
        }
    }

    /// <summary>Delivers <paramref name="delta"/> to every session.</summary>
    public void DeliverToAll(MapDelta delta, ulong revision)
    {
        foreach (var session in _sessions.Values)
        {
            Deliver(session, delta, revision);
        }
    }

    /// <summary>
    /// Delivers <paramref name="delta"/> (a change of node <paramref name="nodeId"/>) to the
    /// sessions of <paramref name="viewers"/> (null: every node), never to the node's own.
    /// O(sessions) without viewers, O(viewers) with them.
    /// </summary>
    public void Broadcast(ulong nodeId, MapDelta delta, IEnumerable<ulong>? viewers, ulong revision)
    {
        if (viewers is null)
        {
            foreach (var session in _sessions.Values)
            {
                if (session.NodeId != nodeId)
                {
                    Deliver(session, delta, revision);
                }
            }
            return;
        }
        foreach (ulong viewer in viewers)
        {
            if (viewer != nodeId && _sessions.TryGetValue(viewer, out var session))
            {
                Deliver(session, delta, revision);
            }
        }
    }

    /// <summary>Ends the node's live stream, if any, with <paramref name="failure"/>; its session stays.</summary>
    public void Terminate(ulong nodeId, CoordinationException failure)
    {
        if (_sessions.TryGetValue(nodeId, out var session))
        {
            session.Live?.Terminate(failure);
        }
    }

    /// <summary>Drops the node's session (it left); its live stream ends with <paramref name="failure"/>.</summary>
    public void Remove(ulong nodeId, CoordinationException failure)
    {
        if (_sessions.Remove(nodeId, out var session))
        {
            session.Live?.Terminate(failure);
        }
    }

    /// <summary>Forgets sessions disconnected longer than the retention time (they resume from the change log afterwards).</summary>
    /// <returns>How many were dropped.</returns>
    public int Prune(DateTimeOffset now)
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

    /// <summary>
    /// Drops every session and returns the live streams, for the caller to end outside the lock
    /// (the bus is closing). With <paramref name="stopKeepAlives"/>, their keep-alives stop now.
    /// </summary>
    public List<MapStream> TakeLive(bool stopKeepAlives)
    {
        List<MapStream> live = [];
        foreach (var session in _sessions.Values)
        {
            if (session.Live is { IsClosed: false } stream)
            {
                if (stopKeepAlives)
                {
                    stream.KeepAliveTimer?.Dispose();
                }
                live.Add(stream);
            }
        }
        _sessions.Clear();
        return live;
    }

    /// <summary>
    /// Ends each stream at a random moment within <paramref name="window"/> (what was queued is
    /// still sent first). Touches no session state: thread-safe, called outside the bus lock.
    /// </summary>
    public void EndSpread(IReadOnlyList<MapStream> live, Func<MapStream, CoordinationException> failureOf, TimeSpan window, Random random)
    {
        foreach (var stream in live)
        {
            var delay = window <= TimeSpan.Zero ? TimeSpan.Zero : window * random.NextDouble();
            if (delay == TimeSpan.Zero)
            {
                stream.Terminate(failureOf(stream));
                continue;
            }
            var failure = failureOf(stream);
            ITimer? timer = null;
            timer = _time.CreateTimer(_ =>
            {
                stream.Terminate(failure);
                timer?.Dispose();
            }, null, delay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Queues a keep-alive on the stream if it is still its session's live one, and schedules the next.</summary>
    public void SendKeepAlive(MapStream stream, ulong revision)
    {
        if (stream.IsClosed || stream.Session.Live != stream)
        {
            return;
        }
        var session = stream.Session;
        if (stream.TryWrite(Stamp(new MapResponse { Sequence = ++session.LastSequence, KeepAlive = SharedKeepAlive }, revision)))
        {
            _counters.KeepAliveQueued();
            stream.KeepAliveTimer?.Change(_settings.KeepAlive.Next(), Timeout.InfiniteTimeSpan);
        }
        else
        {
            DropSlow(stream);
        }
    }

    /// <summary>
    /// Gives the delta the session's next sequence, keeps it for resume (also while the session
    /// is disconnected), and queues it on the live stream. A stream whose queue is full is
    /// ended: the client resumes (or gets a full netmap) instead of the server buffering.
    /// </summary>
    private void Deliver(MapSession session, MapDelta delta, ulong revision)
    {
        var message = Stamp(new MapResponse { Sequence = ++session.LastSequence, Delta = delta }, revision);
        ulong evicted = session.Ring.Add(message);
        if (evicted > session.ReplayFloor)
        {
            session.ReplayFloor = evicted;
        }
        if (session.Live is { IsClosed: false } live)
        {
            if (!ReferenceEquals(delta, _sizedDelta))
            {
                _sizedDelta = delta; // one delta goes to many sessions: measured once
                _sizedDeltaBytes = delta.CalculateSize();
            }
            if (live.TryWrite(message, _sizedDeltaBytes))
            {
                _counters.MessageQueued();
            }
            else
            {
                DropSlow(live);
            }
        }
    }

    /// <summary>Queues what the session sent after <paramref name="lastSequence"/>; the first message carries the handle.</summary>
    private void Replay(MapStream stream, ulong lastSequence, ulong revision)
    {
        var session = stream.Session;
        var missed = session.Ring.After(lastSequence);
        if (missed.Count == 0)
        {
            stream.TryWrite(Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle, KeepAlive = SharedKeepAlive }, revision));
            return;
        }
        stream.TryWrite(new MapResponse
        {
            Sequence = missed[0].Sequence,
            Session = session.Handle,
            Delta = missed[0].Delta,
            Epoch = missed[0].Epoch,
            Revision = missed[0].Revision,
        });
        for (int i = 1; i < missed.Count; i++)
        {
            stream.TryWrite(missed[i]);
        }
    }

    /// <summary>Stamps a message with the epoch and the revision it reflects.</summary>
    private MapResponse Stamp(MapResponse message, ulong revision)
    {
        message.Epoch = _epoch;
        message.Revision = revision;
        return message;
    }

    private void DropSlow(MapStream stream)
    {
        _counters.SlowStreamDropped();
        stream.Terminate(Failures.Unavailable("the client did not keep up with its map stream; reconnect with the session and last sequence to resume"));
    }

    private static string NewHandle() => Base64Url(RandomNumberGenerator.GetBytes(16));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed class KeepAliveTick(Action<MapStream> due, MapStream stream)
    {
        public void Fire() => due(stream);
    }
}
