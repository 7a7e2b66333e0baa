using MeshNet.Userspace.Stack;

namespace MeshNet.Filter;

/// <summary>
/// One entry of the <see cref="ConnectionTracker"/>: a flow keyed as this node sends it (source:
/// our address). <see cref="LastSeen"/> and <see cref="State"/> change on the data path without a
/// lock (atomic writes); the list links are guarded by the tracker's lock.
/// </summary>
internal sealed class TrackedFlow
{
    /// <summary>TCP: we sent a FIN.</summary>
    public const int FinSent = 1;

    /// <summary>TCP: the peer sent a FIN.</summary>
    public const int FinReceived = 2;

    /// <summary>TCP: a RST went either way.</summary>
    public const int Reset = 4;

    /// <summary>TCP: the peer answered.</summary>
    public const int Answered = 8;

    private long _lastSeen;
    private int _state;

    public TrackedFlow(FlowTuple key, bool openedHere, long now)
    {
        Key = key;
        OpenedHere = openedHere;
        _lastSeen = now;
    }

    /// <summary>The flow as this node sends it.</summary>
    public FlowTuple Key { get; }

    /// <summary>
    /// True for a flow this node opened (replies are admitted); false for a UDP flow a peer
    /// opened under the rules (recorded so that our answers do not turn it into one of ours: its
    /// packets stay subject to the rules).
    /// </summary>
    public bool OpenedHere { get; }

    /// <summary>The time provider's timestamp of the last packet either way.</summary>
    public long LastSeen => Volatile.Read(ref _lastSeen);

    /// <summary>TCP state bits (<see cref="FinSent"/>...).</summary>
    public int State => Volatile.Read(ref _state);

    // Guarded by the tracker's lock: insertion order, oldest first.
    public TrackedFlow? Previous { get; set; }

    public TrackedFlow? Next { get; set; }

    /// <summary>False once removed from the table (guarded by the tracker's lock).</summary>
    public bool Linked { get; set; }

    public void Touch(long now) => Volatile.Write(ref _lastSeen, now);

    public void AddState(int bits)
    {
        if ((Volatile.Read(ref _state) & bits) != bits)
        {
            Interlocked.Or(ref _state, bits);
        }
    }

    /// <summary>A new SYN of ours on a lingering flow: the port is being reused.</summary>
    public void Restart() => Volatile.Write(ref _state, 0);
}
