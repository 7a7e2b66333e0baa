namespace MeshNet.TestSupport.Interop;

/// <summary>Waits for a condition by polling with a deadline (never a bare fixed sleep).</summary>
public static class Poll
{
    /// <summary>
    /// Evaluates <paramref name="condition"/> until it returns true, at intervals growing from
    /// 10 ms to 250 ms. An exception thrown by the condition propagates immediately (use it to
    /// fail fast, e.g. when the awaited process has died).
    /// </summary>
    /// <exception cref="TimeoutException">The condition stayed false for <paramref name="timeout"/>; the message names <paramref name="what"/>.</exception>
    public static async Task UntilAsync(Func<CancellationToken, Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTime.UtcNow + timeout;
        var interval = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (await condition(cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0.##} s waiting for {what}.");
            }

            await Task.Delay(interval < remaining ? interval : remaining, cancellationToken).ConfigureAwait(false);
            interval = TimeSpan.FromMilliseconds(Math.Min(interval.TotalMilliseconds * 2, 250));
        }
    }

    /// <summary>Synchronous-condition overload of <see cref="UntilAsync(Func{CancellationToken, Task{bool}}, TimeSpan, string, CancellationToken)"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(_ => Task.FromResult(condition()), timeout, what, cancellationToken);
    }
}
