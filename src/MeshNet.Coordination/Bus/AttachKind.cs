namespace MeshNet.Coordination.Bus;

/// <summary>How a map stream started (<see cref="TailnetBus.Attach"/>).</summary>
internal enum AttachKind
{
    /// <summary>A full netmap.</summary>
    Full,

    /// <summary>The session's replay buffer: exactly the messages the node missed.</summary>
    Replayed,

    /// <summary>One catch-up delta built from the change log's revisions (a session served elsewhere, or whose buffer did not reach back).</summary>
    CaughtUp,
}
