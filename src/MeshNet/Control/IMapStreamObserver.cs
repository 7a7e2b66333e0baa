using MeshNet.Control.V1;

namespace MeshNet.Control;

/// <summary>
/// Watches a <see cref="MapStreamLoop"/>: every message it applied (or skipped as already seen)
/// and every stream's end. For diagnostics and tests (control gaps, sequence continuity, epochs).
/// Called on the loop's task; implementations must be quick and must not throw.
/// </summary>
internal interface IMapStreamObserver
{
    /// <summary>A message was received and applied (<paramref name="firstOfStream"/>: the first of a new stream).</summary>
    void MessageApplied(MapResponse message, bool firstOfStream, Uri server);

    /// <summary>A stream ended (<paramref name="failure"/> null: the service ended it cleanly).</summary>
    void StreamEnded(Exception? failure, Uri server);
}
