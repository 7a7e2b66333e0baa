using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>The end of streams and of the bus: closing (at once or spread), retiring, pruning sessions.</summary>
internal sealed partial class TailnetBus
{
    /// <summary>Ends every stream with <paramref name="failure"/> and refuses new ones (tailnet deleted, lease lost, service stopping). Idempotent.</summary>
    /// <returns>How many streams were ended.</returns>
    public int Close(CoordinationException failure) => Close(_ => failure);

    /// <summary>Like <see cref="Close(CoordinationException)"/>, with a failure per stream (redirects spread over a window).</summary>
    public int Close(Func<MapStream, CoordinationException> failureOf)
    {
        List<MapStream> live = [];
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            _closedFailure = Failures.Unavailable("the tailnet's bus was closed");
            foreach (var session in _sessions.Values)
            {
                if (session.Live is { IsClosed: false } stream)
                {
                    live.Add(stream);
                }
            }
            _sessions.Clear();
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
        List<MapStream> live = [];
        lock (_gate)
        {
            if (_closedFailure is not null)
            {
                return 0;
            }
            _closedFailure = Failures.Unavailable("the tailnet's bus was closed");
            foreach (var session in _sessions.Values)
            {
                if (session.Live is { IsClosed: false } stream)
                {
                    stream.KeepAliveTimer?.Dispose();
                    live.Add(stream);
                }
            }
            _sessions.Clear();
        }
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
}
