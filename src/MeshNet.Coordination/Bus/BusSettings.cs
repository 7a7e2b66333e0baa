namespace MeshNet.Coordination.Bus;

/// <summary>The knobs of every <see cref="TailnetBus"/>, from the service options.</summary>
/// <param name="ReplayBufferSize">Deltas kept per session for resume.</param>
/// <param name="SendQueueSize">Messages that may wait on one stream before it is dropped as too slow.</param>
/// <param name="SessionRetention">How long a disconnected session is kept for resume.</param>
/// <param name="KeepAlive">Keep-alive delays.</param>
internal sealed record BusSettings(int ReplayBufferSize, int SendQueueSize, TimeSpan SessionRetention, KeepAliveJitter KeepAlive);
