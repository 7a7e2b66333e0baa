using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Validation;

namespace MeshNet.Coordination.Bus;

/// <summary>
/// The held write gate of an open tailnet bus (<see cref="TailnetHub.LockAsync"/>): while it is
/// held, the holder's writes and publishes are the tailnet's only ones. Writes go through
/// <see cref="CommitAsync"/>, which fences them with the bus's epoch. Dispose releases the gate.
/// </summary>
internal sealed class TailnetWriteScope : IDisposable
{
    private readonly TailnetHub _hub;
    private int _disposed;

    public TailnetWriteScope(TailnetHub hub, TailnetBus bus)
    {
        _hub = hub;
        Bus = bus;
    }

    public TailnetBus Bus { get; }

    /// <summary>
    /// Runs one fenced write with the bus's fence (and <paramref name="idempotencyKey"/>). A write
    /// refused by the fence is retried once if a renewal shows the lease is still this server's
    /// (the database clock had moved past an old expiry); otherwise the bus is closed and the
    /// caller gets NoOwner (it retries, and is sent to the new owner). A write that failed in the
    /// store has an unknown outcome: the bus is reconciled with the store and the caller gets
    /// Unavailable (retry with the same idempotency key). Publish only what this returns as
    /// committed.
    /// </summary>
    public async Task<FencedResult<T>> CommitAsync<T>(Func<TailnetFence, Task<FencedResult<T>>> write, CancellationToken cancellationToken,
        string? idempotencyKey = null)
    {
        var fence = Bus.Fence.WithKey(idempotencyKey);
        for (int attempt = 0; ; attempt++)
        {
            FencedResult<T> result;
            try
            {
                result = await write(fence).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is not OutOfMemoryException and not ArgumentException)
            {
                await _hub.ReconcileAsync(Bus).ConfigureAwait(false);
                throw Failures.Unavailable($"the write's outcome is unknown ({exception.GetType().Name}); retry it (with the same idempotency key)");
            }
            if (result.Status != FencedStatus.Fenced)
            {
                return result;
            }
            if (attempt == 0 && await _hub.Keeper.ConfirmAsync(Bus.Tailnet, Bus.Epoch, cancellationToken).ConfigureAwait(false))
            {
                continue;
            }
            _hub.Counters.FencedWriteRefused();
            CoordinationLog.WriteFenced(_hub.Logger, Bus.Tailnet, Bus.Epoch);
            _hub.OnLeaseLost(Bus.Tailnet, Bus.Epoch, Sharding.LeaseLoss.Taken);
            throw Failures.NoOwner(Bus.Tailnet, TimeSpan.FromMilliseconds(100), "this server's lease was superseded");
        }
    }

    /// <summary>
    /// Writes the live state of several nodes in one fenced write (one revision), counts it, and
    /// publishes what was committed (<see cref="TailnetBus.ApplyLive"/>). Fencing and unknown
    /// outcomes as <see cref="CommitAsync{T}"/>. Never charged: callers charge the changes nodes
    /// asked for themselves.
    /// </summary>
    public async Task CommitLiveStateAsync(IReadOnlyList<NodeLiveState> states, CancellationToken cancellationToken)
    {
        var result = await CommitAsync(fence => _hub.Store.UpdateLiveStateAsync(fence, states, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (result.IsCommitted)
        {
            _hub.Counters.LiveStateWritten(result.Value);
            Bus.ApplyLive(states, result.Revision);
        }
    }

    /// <summary>
    /// Charges one change to the tailnet's budget, before a write a node or an administrator asked
    /// for (never before the service's own: going offline, maintenance).
    /// </summary>
    /// <exception cref="CoordinationException">RateLimited, with when to retry.</exception>
    public void Charge()
    {
        if (!Bus.Changes.TryTake(out var retryAfter))
        {
            _hub.Counters.RateLimitHit();
            throw new CoordinationException(CoordinationErrorCode.RateLimited,
                $"tailnet '{Bus.Tailnet}' is making changes faster than its limit; retry in {retryAfter.TotalMilliseconds:0} ms") { RetryAfter = retryAfter };
        }
        _hub.Load.Changed(Bus.Tailnet);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Bus.WriteGate.Release();
        }
    }
}
