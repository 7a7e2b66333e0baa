namespace MeshNet;

/// <summary>
/// An <see cref="IMeshNetmapStore"/> in memory: the netmap survives a node being disposed and
/// started again in the same process (with the same store instance), not the process. Holds the
/// serialized, integrity-protected form, exactly as a persistent store would. Thread-safe.
/// </summary>
public sealed class InMemoryNetmapStore : IMeshNetmapStore
{
    private readonly Lock _gate = new();
    private byte[]? _saved;

    /// <inheritdoc/>
    public ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        cancellationToken.ThrowIfCancellationRequested();
        byte[]? saved;
        lock (_gate)
        {
            saved = _saved;
        }
        if (saved is null)
        {
            return ValueTask.FromResult<MeshCachedNetmap?>(null);
        }
        try
        {
            return ValueTask.FromResult<MeshCachedNetmap?>(MeshCachedNetmap.Deserialize(saved, identity));
        }
        catch (InvalidDataException)
        {
            return ValueTask.FromResult<MeshCachedNetmap?>(null); // another node's: not ours to use
        }
    }

    /// <inheritdoc/>
    public ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(netmap);
        cancellationToken.ThrowIfCancellationRequested();
        var bytes = netmap.Serialize(identity);
        lock (_gate)
        {
            _saved = bytes;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask DeleteAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            _saved = null;
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>True when a netmap is held.</summary>
    public bool HasNetmap
    {
        get
        {
            lock (_gate)
            {
                return _saved is not null;
            }
        }
    }
}
