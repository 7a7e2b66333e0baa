using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Bus;

/// <summary>Live state: what a node's online state, endpoints and run id become, and publishing them once committed.</summary>
internal sealed partial class TailnetBus
{
    /// <summary>
    /// Checks that the node may open a map stream (registered, current key, key not expired) and
    /// returns the live state it will have once connected, or null when that is what the bus
    /// already has (nothing to write).
    /// </summary>
    /// <exception cref="CoordinationException">The node is gone, its key was replaced or expired, or the bus is closed.</exception>
    public NodeLiveState? LiveStateOnAttach(ulong nodeId, ReadOnlySpan<byte> nodeKey, IReadOnlyList<string> endpoints, string instance, DateTimeOffset now)
    {
        lock (_gate)
        {
            var node = RequireAttachable(nodeId, nodeKey, now);
            var record = node.Record;
            string newInstance = instance.Length > 0 ? instance : record.Instance;
            if (record.Online && record.Endpoints.SequenceEqual(endpoints) && record.Instance == newInstance)
            {
                return null;
            }
            return new NodeLiveState(nodeId, true, endpoints, newInstance, null);
        }
    }

    /// <summary>The live state after an endpoint report, or null when nothing changes.</summary>
    public NodeLiveState? LiveStateOnEndpoints(ulong nodeId, IReadOnlyList<string> endpoints)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_nodes.TryGetValue(nodeId, out var node) || node.Record.Endpoints.SequenceEqual(endpoints))
            {
                return null;
            }
            return new NodeLiveState(nodeId, node.Record.Online, endpoints, node.Record.Instance, null);
        }
    }

    /// <summary>
    /// The live state of a node whose stream ended and that has no other stream: offline, last
    /// seen <paramref name="now"/>. Null when it has a live stream, is offline already, or is gone.
    /// </summary>
    public NodeLiveState? LiveStateOffline(ulong nodeId, DateTimeOffset now)
    {
        lock (_gate)
        {
            if (_closedFailure is not null || !_nodes.TryGetValue(nodeId, out var node) || !node.Record.Online ||
                (_sessions.TryGetValue(nodeId, out var session) && session.Live is { IsClosed: false }))
            {
                return null;
            }
            return new NodeLiveState(nodeId, false, [.. node.Record.Endpoints], node.Record.Instance, now);
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
            return [.. _nodes.Where(pair => pair.Value.Record.Online &&
                !(_sessions.TryGetValue(pair.Key, out var session) && (session.Live is { IsClosed: false } || _time.GetElapsedTime(session.DetachedTimestamp) < grace)))
                .Select(pair => pair.Key)];
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
            Advance(revision);
            foreach (var state in states)
            {
                if (!_nodes.TryGetValue(state.NodeId, out var node))
                {
                    continue;
                }
                var record = node.Record.Clone();
                var patch = new PeerPatch { Id = state.NodeId };
                if (record.Online != state.Online)
                {
                    record.Online = state.Online;
                    patch.Online = state.Online;
                }
                if (!record.Endpoints.SequenceEqual(state.Endpoints))
                {
                    record.Endpoints.Clear();
                    record.Endpoints.Add(state.Endpoints);
                    patch.Endpoints = ToEndpoints(state.Endpoints);
                }
                if (record.Instance != state.Instance)
                {
                    record.Instance = state.Instance; // a restart: peers hand it a new WireGuard session
                    patch.Instance = state.Instance;
                }
                if (state.LastSeen is { } lastSeen)
                {
                    record.LastSeen = Timestamp.FromDateTimeOffset(lastSeen);
                    patch.LastSeen = record.LastSeen;
                }
                node.Record = record;
                node.Revision = revision;
                BroadcastToViewers(state.NodeId, new MapDelta { Patches = { patch } });
            }
        }
    }

    /// <summary>The nodes marked online (a snapshot): on a bus just loaded after a takeover, those the old owner had connected.</summary>
    public IReadOnlyList<ulong> OnlineNodes()
    {
        lock (_gate)
        {
            return [.. _nodes.Where(pair => pair.Value.Record.Online).Select(pair => pair.Key)];
        }
    }
}
