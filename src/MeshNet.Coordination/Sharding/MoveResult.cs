namespace MeshNet.Coordination.Sharding;

/// <summary>A completed planned move.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="FromServer">The source.</param>
/// <param name="ToServer">The target.</param>
/// <param name="Epoch">The target's epoch.</param>
/// <param name="Frozen">How long the tailnet's writes were held (freeze to handover).</param>
/// <param name="StreamsRedirected">Map streams sent to the target.</param>
internal sealed record MoveResult(string Tailnet, string FromServer, string ToServer, ulong Epoch, TimeSpan Frozen, int StreamsRedirected);
