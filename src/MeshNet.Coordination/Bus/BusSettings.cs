namespace MeshNet.Coordination.Bus;

/// <summary>The knobs of every <see cref="TailnetBus"/>, from the service options.</summary>
/// <param name="ReplayBufferSize">Deltas kept per session for resume.</param>
/// <param name="SendQueueSize">Messages that may wait on one stream before it is dropped as too slow.</param>
/// <param name="SessionRetention">How long a disconnected session is kept for resume.</param>
/// <param name="KeepAlive">Keep-alive delays.</param>
/// <param name="MaxQueuedBytes">The bytes all of a tailnet's streams may hold queued.</param>
/// <param name="MaxStreams">The map streams a tailnet may have open.</param>
/// <param name="ChangesPerSecond">The changes a tailnet may make per second (the budget refills at this rate).</param>
/// <param name="ChangeBurst">The changes a tailnet may make at once.</param>
/// <param name="LoadAveragingWindow">The time constant of each tailnet's change-rate average (the rebalancer weighs it).</param>
internal sealed record BusSettings(int ReplayBufferSize, int SendQueueSize, TimeSpan SessionRetention, KeepAliveJitter KeepAlive,
    long MaxQueuedBytes = long.MaxValue, int MaxStreams = int.MaxValue, double ChangesPerSecond = double.MaxValue, double ChangeBurst = double.MaxValue,
    TimeSpan LoadAveragingWindow = default);
