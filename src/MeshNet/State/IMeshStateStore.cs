namespace MeshNet;

/// <summary>
/// Keeps a node's identity (<see cref="MeshNodeIdentity"/>) between runs. Implementations:
/// <see cref="InMemoryStateStore"/> (the default: a new node every run) and
/// <see cref="FileStateStore"/>.
/// </summary>
/// <remarks>
/// A store is plain persistence: it never calls the coordination service or the data plane.
/// The node calls <see cref="LoadAsync"/> once when it starts and <see cref="SaveAsync"/>
/// whenever the identity changes (new key, registration), never concurrently for one node.
/// A store serves one node at a time. Implementations must never log or put in exception
/// messages the private key.
/// </remarks>
public interface IMeshStateStore
{
    /// <summary>
    /// Loads the saved identity, or returns null when there is none (the node then creates a
    /// new one). The caller owns (and disposes) the returned instance.
    /// </summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.StateStoreFailed"/>: the state exists but cannot be read.</exception>
    ValueTask<MeshNodeIdentity?> LoadAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Saves <paramref name="identity"/>, replacing what was saved before. The store copies what
    /// it keeps: the caller keeps ownership of <paramref name="identity"/>.
    /// </summary>
    /// <exception cref="MeshException"><see cref="MeshErrorCode.StateStoreFailed"/>: the state could not be written.</exception>
    ValueTask SaveAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default);
}
