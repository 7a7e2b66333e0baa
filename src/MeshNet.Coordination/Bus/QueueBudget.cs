namespace MeshNet.Coordination.Bus;

/// <summary>
/// The bytes a tailnet's map streams may hold queued at once (<see cref="CoordinationOptions.MaxQueuedBytesPerTailnet"/>):
/// one tailnet whose nodes read slowly cannot take the server's memory from the others. A write
/// that would exceed it is refused (the bus then drops that stream as too slow; it resumes later).
/// Thread-safe (interlocked).
/// </summary>
internal sealed class QueueBudget(long limit)
{
    private long _bytes;

    public long Limit { get; } = limit;

    /// <summary>Bytes queued now.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    public bool TryReserve(int size)
    {
        if (Interlocked.Add(ref _bytes, size) <= Limit)
        {
            return true;
        }
        Interlocked.Add(ref _bytes, -size);
        return false;
    }

    public void Release(int size) => Interlocked.Add(ref _bytes, -size);
}
