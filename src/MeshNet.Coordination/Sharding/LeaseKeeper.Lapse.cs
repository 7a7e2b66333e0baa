namespace MeshNet.Coordination.Sharding;

/// <summary>The lapse side of <see cref="LeaseKeeper"/>: the timer on the earliest deadline and the re-check that stops serving what could not be renewed in time.</summary>
internal sealed partial class LeaseKeeper
{
    /// <summary>
    /// A deadline passed (writes stopped then: <see cref="FreshEpoch"/> is strict): renew once more,
    /// started now and bounded by the margin (a clock that jumped, a slow statement), then declare
    /// lapsed, and stop serving, what is still past its deadline. A lapsed lease thus ends its
    /// streams within the TTL of the last renewal sent.
    /// </summary>
    private void OnLapseTick() => _ = CheckLapsedAsync();

    private async Task CheckLapsedAsync()
    {
        try
        {
            // The whole re-check (waiting for a renewal in flight, then one of its own) takes at most
            // half the margin: a lapsed lease stops being served at least half a margin before the
            // database could consider it expired.
            long started = _time.GetTimestamp();
            var budget = _settings.Margin / 2;
            if (await _renewGate.WaitAsync(budget, _stopping.Token).ConfigureAwait(false))
            {
                try
                {
                    var left = budget - _time.GetElapsedTime(started);
                    if (left > TimeSpan.Zero)
                    {
                        await RenewCoreAsync(_stopping.Token, left).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _renewGate.Release();
                }
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }
        long now = _time.GetTimestamp();
        var lapsed = new List<(string, ulong, LeaseLoss)>();
        lock (_gate)
        {
            foreach (var (tailnet, held) in _held)
            {
                if (!held.Lapsed && now >= held.Deadline)
                {
                    held.Lapsed = true;
                    lapsed.Add((tailnet, held.Epoch, LeaseLoss.Lapsed));
                }
            }
        }
        Notify([], lapsed);
        ArmLapseTimer();
    }

    private void ArmLapseTimer()
    {
        long? earliest = null;
        lock (_gate)
        {
            foreach (var held in _held.Values)
            {
                if (!held.Lapsed && (earliest is null || held.Deadline < earliest))
                {
                    earliest = held.Deadline;
                }
            }
        }
        if (earliest is not { } deadline)
        {
            return;
        }
        var due = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
        try
        {
            _lapseTimer?.Change(due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
