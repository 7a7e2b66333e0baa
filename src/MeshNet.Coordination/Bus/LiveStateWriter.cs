using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// Group commit of one tailnet's live state (online, endpoints, run id, last seen). Map stream
/// attaches, endpoint reports and stream ends queue a request here, and one flusher at a time
/// serves them in batches: it takes the tailnet's write gate (<see cref="TailnetHub.LockAsync"/>),
/// works out the state each queued request gives its node, in queue order and each on top of the
/// ones before it (so the outcome is the one writing them one by one would have), charges the
/// tailnet's change budget for each change a node asked for, writes every changed node in ONE
/// fenced <see cref="ICoordinationStore.UpdateLiveStateAsync"/> (one revision; a node queued
/// twice is written once, with its last state), publishes them
/// (<see cref="TailnetBus.ApplyLive"/>), and then, still under the gate, attaches the batch's
/// streams. A mass reconnect of N nodes thus costs a few transactions instead of N.
/// </summary>
/// <remarks>
/// <para>Ordering: a stream is attached after its own state was published and before the gate
/// is released, as when each attach wrote alone: its first message reflects its state, and every
/// change published later reaches its session. A stream end queued after an attach of the same
/// node in one batch writes nothing (the node is online again once the batch is done), and one
/// queued in a later batch sees the attached stream.</para>
/// <para>Failures: a request's own (the node is gone, its key was replaced, RateLimited) fail
/// only it; those of the batch (the lease was lost or moved, the tailnet was deleted, the write's
/// outcome is unknown) fail every request of the batch. Fencing and unknown outcomes are those
/// of <see cref="TailnetWriteScope.CommitAsync"/>. The write is not canceled by a caller that
/// stops waiting (it serves the whole batch); a stream attached for a caller that left is
/// detached again, and its node written offline unless it has another stream.</para>
/// <para>Thread-safe: <c>_gate</c> guards the queue and whether a flusher runs (no I/O under
/// it). The flusher runs on the thread pool, one per writer; several writers of one tailnet
/// (<see cref="TailnetHub.LiveStateFor"/> may replace an idle one) only batch separately, since
/// each batch holds the write gate.</para>
/// </remarks>
internal sealed class LiveStateWriter
{
    /// <summary>The most requests one batch takes (bounds one transaction; the rest go into the next).</summary>
    public const int MaxBatchSize = 1000;

    private readonly Lock _gate = new();
    private readonly Queue<Request> _queue = new();
    private readonly TailnetHub _hub;
    private readonly TimeProvider _time;
    private bool _flushing;

    public LiveStateWriter(TailnetHub hub, string tailnet, TimeProvider time)
    {
        _hub = hub;
        Tailnet = tailnet;
        _time = time;
    }

    public string Tailnet { get; }

    /// <summary>The requests waiting for a batch (diagnostics, tests).</summary>
    public int Queued
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>True when nothing is queued and no batch is being written.</summary>
    public bool IsIdle
    {
        get
        {
            lock (_gate)
            {
                return !_flushing && _queue.Count == 0;
            }
        }
    }

    /// <summary>
    /// Opens a map stream of a node: its live state (online, <paramref name="endpoints"/>, run id
    /// <paramref name="instance"/>) is written with its batch when it changes (charged to the
    /// tailnet's change budget) and published, then the stream is attached as
    /// <see cref="TailnetBus.Attach"/> does, under the same write gate.
    /// </summary>
    /// <exception cref="CoordinationException">
    /// As <see cref="TailnetBus.Attach"/>; RateLimited; NotRegistered when the tailnet was deleted;
    /// NotOwner, NoOwner or Unavailable from the lease or the write.
    /// </exception>
    /// <exception cref="OperationCanceledException">The caller stopped waiting.</exception>
    public async Task<AttachedStream> AttachAsync(ulong nodeId, byte[] nodeKey, IReadOnlyList<string> endpoints, string instance, string session,
        ulong lastSequence, ulong lastRevision, CancellationToken cancellationToken)
    {
        var request = new Request(RequestKind.Attach, nodeId, endpoints)
        {
            NodeKey = nodeKey,
            Instance = instance,
            Session = session,
            LastSequence = lastSequence,
            LastRevision = lastRevision,
        };
        return (await RunAsync(request, cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>
    /// A node reports its endpoints: written with its batch when they change (charged to the
    /// tailnet's change budget) and published; completes once done.
    /// </summary>
    /// <exception cref="CoordinationException">RateLimited; NotRegistered when the tailnet was deleted; NotOwner, NoOwner or Unavailable from the lease or the write.</exception>
    /// <exception cref="OperationCanceledException">The caller stopped waiting (the report may still be written).</exception>
    public async Task ReportEndpointsAsync(ulong nodeId, IReadOnlyList<string> endpoints, CancellationToken cancellationToken) =>
        await RunAsync(new Request(RequestKind.Endpoints, nodeId, endpoints), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// The node's last stream on <paramref name="bus"/> ended: it goes offline, last seen when its
    /// batch is written, unless it has a stream again by then or <paramref name="bus"/> is no
    /// longer the tailnet's. The service's own write: never charged.
    /// </summary>
    /// <exception cref="CoordinationException">NotOwner, NoOwner or Unavailable from the lease or the write.</exception>
    public async Task WriteOfflineAsync(TailnetBus bus, ulong nodeId) =>
        await RunAsync(new Request(RequestKind.Offline, nodeId, []) { Bus = bus }, CancellationToken.None).ConfigureAwait(false);

    private async Task<AttachedStream?> RunAsync(Request request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Enqueue(request);
        using var registration = cancellationToken.Register(static (state, token) => ((Request)state!).Done.TrySetCanceled(token), request);
        return await request.Done.Task.ConfigureAwait(false);
    }

    private void Enqueue(Request request)
    {
        bool start;
        lock (_gate)
        {
            _queue.Enqueue(request);
            start = !_flushing;
            _flushing = true;
        }
        if (start)
        {
            _ = Task.Run(FlushAsync);
        }
    }

    /// <summary>The flusher: batch after batch until the queue is empty. Never throws: every failure goes to the requests.</summary>
    private async Task FlushAsync()
    {
        do
        {
            List<Request> batch = [];
            try
            {
                using var scope = await _hub.LockAsync(Tailnet, CancellationToken.None).ConfigureAwait(false);
                batch = Take(MaxBatchSize);
                if (scope is null)
                {
                    TailnetGone(batch);
                }
                else
                {
                    await WriteAsync(scope, batch).ConfigureAwait(false);
                }
            }
            catch (Exception exception) when (exception is not OutOfMemoryException)
            {
                // The gate could not be taken (the lease is another server's, the service is
                // stopping): every request queued fails the same way. Or the write failed: its batch.
                if (batch.Count == 0)
                {
                    batch = Take(int.MaxValue);
                }
                foreach (var request in batch)
                {
                    request.Fail(exception);
                }
            }
        }
        while (MoreQueued());
    }

    /// <summary>One batch, under the write gate: plan, write, publish, attach.</summary>
    private async Task WriteAsync(TailnetWriteScope scope, List<Request> batch)
    {
        var bus = scope.Bus;
        var now = _time.GetUtcNow();
        var planned = new Dictionary<ulong, NodeLiveState>();
        var attaching = new HashSet<ulong>();
        var accepted = new List<Request>(batch.Count);
        foreach (var request in batch)
        {
            if (request.Done.Task.IsCompleted)
            {
                continue; // its caller stopped waiting before anything was done for it
            }
            planned.TryGetValue(request.NodeId, out var before);
            NodeLiveState? state;
            try
            {
                state = Plan(bus, request, before, attaching, now);
                if (state is not null && request.Kind != RequestKind.Offline)
                {
                    scope.Charge(); // a change the node asked for
                }
            }
            catch (CoordinationException exception)
            {
                request.Fail(exception);
                continue;
            }
            if (state is not null)
            {
                // The last state wins; a last-seen time queued before it (the node went offline,
                // then came back) is still written, as writing them one by one would have.
                planned[request.NodeId] = state.LastSeen is null && before?.LastSeen is { } seen ? state with { LastSeen = seen } : state;
            }
            if (request.Kind == RequestKind.Attach)
            {
                attaching.Add(request.NodeId);
            }
            accepted.Add(request);
        }
        if (planned.Count > 0)
        {
            await scope.CommitLiveStateAsync([.. planned.Values], CancellationToken.None).ConfigureAwait(false);
        }
        foreach (var request in accepted)
        {
            if (request.Kind == RequestKind.Attach)
            {
                Attach(bus, request, now);
            }
            else
            {
                request.Done.TrySetResult(null);
            }
        }
    }

    /// <summary>The state <paramref name="request"/> gives its node on top of <paramref name="before"/> (queued earlier in the batch), or null: nothing to write.</summary>
    /// <exception cref="CoordinationException">The node may not attach (gone, key replaced or expired, bus closed).</exception>
    private static NodeLiveState? Plan(TailnetBus bus, Request request, NodeLiveState? before, HashSet<ulong> attaching, DateTimeOffset now) =>
        request.Kind switch
        {
            RequestKind.Attach => bus.LiveStateOnAttach(request.NodeId, request.NodeKey, request.Endpoints, request.Instance, now, before),
            RequestKind.Endpoints => bus.LiveStateOnEndpoints(request.NodeId, request.Endpoints, before),
            // Another bus serves the tailnet now (its view is the store's), or a stream of the
            // node attaches in this batch: nothing to write.
            _ => request.Bus != bus || attaching.Contains(request.NodeId) ? null : bus.LiveStateOffline(request.NodeId, now, before),
        };

    /// <summary>Attaches the stream of an attach request whose state is published; caller holds the write gate.</summary>
    private void Attach(TailnetBus bus, Request request, DateTimeOffset now)
    {
        if (request.Done.Task.IsCompleted)
        {
            // Its caller left after its state was planned: no stream; the node goes offline
            // again unless it has another one.
            Enqueue(new Request(RequestKind.Offline, request.NodeId, []) { Bus = bus, Unobserved = true });
            return;
        }
        AttachedStream attached;
        try
        {
            var stream = bus.Attach(request.NodeId, request.NodeKey, request.Session, request.LastSequence, request.LastRevision, now, out var kind);
            attached = new AttachedStream(bus, stream, kind);
        }
        catch (CoordinationException exception)
        {
            request.Fail(exception);
            return;
        }
        if (!request.Done.TrySetResult(attached) && bus.Detach(attached.Stream, _time.GetUtcNow()))
        {
            // Its caller left just now: nobody sends the stream.
            Enqueue(new Request(RequestKind.Offline, request.NodeId, []) { Bus = bus, Unobserved = true });
        }
    }

    /// <summary>The tailnet was deleted: streams and reports fail; nothing is left to write offline.</summary>
    private static void TailnetGone(List<Request> batch)
    {
        var failure = Failures.NotRegistered("the node's tailnet was deleted");
        foreach (var request in batch)
        {
            if (request.Kind == RequestKind.Offline)
            {
                request.Done.TrySetResult(null);
            }
            else
            {
                request.Fail(failure);
            }
        }
    }

    private List<Request> Take(int max)
    {
        lock (_gate)
        {
            var batch = new List<Request>(Math.Min(max, _queue.Count));
            while (batch.Count < max && _queue.TryDequeue(out var request))
            {
                batch.Add(request);
            }
            return batch;
        }
    }

    /// <summary>True when another batch is due; otherwise the flusher stops (the next request starts one).</summary>
    private bool MoreQueued()
    {
        lock (_gate)
        {
            if (_queue.Count > 0)
            {
                return true;
            }
            _flushing = false;
            return false;
        }
    }

    private enum RequestKind
    {
        Attach,
        Endpoints,
        Offline,
    }

    /// <summary>A queued live-state change and its caller's completion (the attached stream, for an attach).</summary>
    private sealed class Request(RequestKind kind, ulong nodeId, IReadOnlyList<string> endpoints)
    {
        public RequestKind Kind { get; } = kind;

        public ulong NodeId { get; } = nodeId;

        public IReadOnlyList<string> Endpoints { get; } = endpoints;

        public byte[] NodeKey { get; init; } = [];

        public string Instance { get; init; } = "";

        public string Session { get; init; } = "";

        public ulong LastSequence { get; init; }

        public ulong LastRevision { get; init; }

        /// <summary>For a stream end: the bus the stream was on.</summary>
        public TailnetBus? Bus { get; init; }

        /// <summary>Queued by the writer itself: nobody awaits it.</summary>
        public bool Unobserved { get; init; }

        public TaskCompletionSource<AttachedStream?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Fail(Exception exception)
        {
            if (Done.TrySetException(exception) && Unobserved)
            {
                _ = Done.Task.Exception; // observed: nobody else will
            }
        }
    }
}
