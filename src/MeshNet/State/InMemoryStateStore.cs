namespace MeshNet;

/// <summary>
/// An <see cref="IMeshStateStore"/> in memory: the identity lives as long as this instance.
/// The default store, which makes every node a new node; sharing one instance between runs
/// in one process (tests) keeps the identity across restarts.
/// </summary>
/// <remarks>Thread-safe. Holds its own copy of the key, zeroed by <see cref="Dispose"/>.</remarks>
public sealed class InMemoryStateStore : IMeshStateStore, IDisposable
{
    private readonly Lock _lock = new();
    private MeshNodeIdentity? _identity;
    private bool _disposed;

    /// <inheritdoc/>
    public ValueTask<MeshNodeIdentity?> LoadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<MeshNodeIdentity?>(cancellationToken);
        }
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ValueTask.FromResult(_identity?.Clone());
        }
    }

    /// <inheritdoc/>
    public ValueTask SaveAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }
        var copy = identity.Clone();
        MeshNodeIdentity? previous;
        lock (_lock)
        {
            if (_disposed)
            {
                copy.Dispose();
                throw new ObjectDisposedException(nameof(InMemoryStateStore));
            }
            previous = _identity;
            _identity = copy;
        }
        previous?.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Forgets (and zeroes) the saved identity. Idempotent.</summary>
    public void Dispose()
    {
        MeshNodeIdentity? identity;
        lock (_lock)
        {
            _disposed = true;
            identity = _identity;
            _identity = null;
        }
        identity?.Dispose();
    }

    /// <summary>Never shows the key.</summary>
    public override string ToString() => "InMemoryStateStore";
}
