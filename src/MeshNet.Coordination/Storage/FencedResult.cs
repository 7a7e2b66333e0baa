namespace MeshNet.Coordination.Storage;

/// <summary>The result of a fenced write.</summary>
/// <typeparam name="T">The write's own result (an outcome, a stored record).</typeparam>
/// <param name="Status">Whether it was written.</param>
/// <param name="Revision">
/// The tailnet revision of the write (<see cref="FencedStatus.Committed"/>), or of the earlier
/// write with the same idempotency key (<see cref="FencedStatus.Duplicate"/>); 0 otherwise.
/// </param>
/// <param name="Value">The write's result; meaningful for <see cref="FencedStatus.Committed"/> and <see cref="FencedStatus.NotApplied"/>.</param>
/// <param name="Detail">For <see cref="FencedStatus.Duplicate"/>: the earlier change's detail (e.g. the policy version it saved).</param>
public readonly record struct FencedResult<T>(FencedStatus Status, ulong Revision, T Value, string Detail = "")
{
    /// <summary>True when written now.</summary>
    public bool IsCommitted => Status == FencedStatus.Committed;

    /// <summary>A refused write.</summary>
    public static FencedResult<T> Fenced(T value) => new(FencedStatus.Fenced, 0, value);

    /// <summary>A write that did not apply.</summary>
    public static FencedResult<T> NotApplied(T value) => new(FencedStatus.NotApplied, 0, value);
}
