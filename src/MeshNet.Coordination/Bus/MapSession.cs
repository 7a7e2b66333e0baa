namespace MeshNet.Coordination.Bus;

/// <summary>
/// A node's map session: its handle, the sequence numbers it has handed out and the deltas it
/// can replay, surviving disconnects for the retention time so a stream can resume. A node has
/// at most one session. Every field is guarded by the owning <see cref="TailnetBus"/>'s lock.
/// </summary>
internal sealed class MapSession
{
    public MapSession(ulong nodeId, string handle, int replayCapacity)
    {
        NodeId = nodeId;
        Handle = handle;
        Ring = new ReplayRing(replayCapacity);
    }

    public ulong NodeId { get; }

    /// <summary>The opaque handle a client presents to resume.</summary>
    public string Handle { get; }

    /// <summary>The last sequence number handed out (0: none yet).</summary>
    public ulong LastSequence { get; set; }

    /// <summary>
    /// A client that applied the message with this sequence (or a later one) can resume from
    /// the ring: every delta after it is still there. Raised by a full netmap and by eviction.
    /// </summary>
    public ulong ReplayFloor { get; set; }

    public ReplayRing Ring { get; }

    /// <summary>The connected stream, or null while disconnected.</summary>
    public MapStream? Live { get; set; }

    /// <summary>When the last stream ended (meaningful while <see cref="Live"/> is null).</summary>
    public DateTimeOffset DetachedAt { get; set; }

    /// <summary>The same moment on the monotonic clock.</summary>
    public long DetachedTimestamp { get; set; }
}
