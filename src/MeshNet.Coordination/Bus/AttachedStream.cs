namespace MeshNet.Coordination.Bus;

/// <summary>A map stream attached by <see cref="LiveStateWriter.AttachAsync"/>.</summary>
/// <param name="Bus">The bus it is attached to (detach it there when the call ends).</param>
/// <param name="Stream">The stream; its first message is queued.</param>
/// <param name="Kind">How it started.</param>
internal sealed record AttachedStream(TailnetBus Bus, MapStream Stream, AttachKind Kind);
