using MeshNet.Control.V1;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

internal sealed partial class TailnetBus
{
    /// <summary>
    /// The full netmap of a node: itself, the peers it may see sorted by id, the domain, its
    /// filter chunks, whether they are enforced, and the policy version.
    /// </summary>
    private FullMap BuildFullMap(ulong selfId)
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
    /// Delivers <paramref name="delta"/> (a change of node <paramref name="nodeId"/>) to the
    /// sessions of the nodes that may see it, never to its own. O(sessions) without a policy,
    /// O(nodes/64 + viewers) with one.
    /// </summary>
    private void BroadcastToViewers(ulong nodeId, MapDelta delta)
    {
        if (!_access.Enforced)
        {
            foreach (var session in _sessions.Values)
            {
                if (session.NodeId != nodeId)
                {
                    Deliver(session, delta);
                }
            }
            return;
        }
        foreach (int slot in _access.Visible(nodeId).Slots())
        {
            ulong viewer = _access.IdAt(slot);
            if (viewer != nodeId && _sessions.TryGetValue(viewer, out var session))
            {
                Deliver(session, delta);
            }
        }
    }

    private void DeliverToSelf(ulong nodeId, Node record)
    {
        if (_sessions.TryGetValue(nodeId, out var session))
        {
            Deliver(session, new MapDelta { SelfChanged = record });
        }
    }

    /// <summary>
    /// Gives the delta the session's next sequence, keeps it for resume (also while the session
    /// is disconnected), and queues it on the live stream. A stream whose queue is full is
    /// ended: the client resumes (or gets a full netmap) instead of the server buffering.
    /// </summary>
    private void Deliver(MapSession session, MapDelta delta)
    {
        var message = Stamp(new MapResponse { Sequence = ++session.LastSequence, Delta = delta });
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
    private void Replay(MapStream stream, ulong lastSequence)
    {
        var session = stream.Session;
        var missed = session.Ring.After(lastSequence);
        if (missed.Count == 0)
        {
            stream.TryWrite(Stamp(new MapResponse { Sequence = ++session.LastSequence, Session = session.Handle, KeepAlive = SharedKeepAlive }));
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

    private void SendKeepAlive(MapStream stream)
    {
        lock (_gate)
        {
            if (stream.IsClosed || stream.Session.Live != stream)
            {
                return;
            }
            var session = stream.Session;
            if (stream.TryWrite(Stamp(new MapResponse { Sequence = ++session.LastSequence, KeepAlive = SharedKeepAlive })))
            {
                _counters.KeepAliveQueued();
                stream.KeepAliveTimer?.Change(_settings.KeepAlive.Next(), Timeout.InfiniteTimeSpan);
            }
            else
            {
                DropSlow(stream);
            }
        }
    }

    private void DropSlow(MapStream stream)
    {
        _counters.SlowStreamDropped();
        stream.Terminate(Failures.Unavailable("the client did not keep up with its map stream; reconnect with the session and last sequence to resume"));
    }
}
