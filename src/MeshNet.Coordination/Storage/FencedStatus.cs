namespace MeshNet.Coordination.Storage;

/// <summary>What happened to a fenced write (<see cref="FencedResult{T}"/>).</summary>
public enum FencedStatus
{
    /// <summary>Written: the tailnet's revision advanced and a change-log entry was added.</summary>
    Committed,

    /// <summary>
    /// Nothing was written because the write did not apply (the value says why: a name taken, no
    /// such node...). The lease was valid; no revision was used.
    /// </summary>
    NotApplied,

    /// <summary>
    /// Refused: the lease has another epoch (another server took the tailnet over) or has
    /// expired. Nothing was written; the writer must stop serving the tailnet.
    /// </summary>
    Fenced,

    /// <summary>
    /// The idempotency key is already in the change log: the write was applied before (at
    /// <see cref="FencedResult{T}.Revision"/>) and was not applied again.
    /// </summary>
    Duplicate,
}
