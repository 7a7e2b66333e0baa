namespace MeshNet.TestSupport;

/// <summary>
/// Nodes reporting new endpoints back to back (each report a change every peer hears about), as
/// much write load as the nodes can make; failed reports are counted and the node goes on.
/// </summary>
public sealed class EndpointChurn : IAsyncDisposable
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(3);

    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private long _reported;
    private long _failed;

    /// <summary>Starts one report loop per entry of <paramref name="nodes"/> (a node listed twice runs two).</summary>
    public EndpointChurn(IEnumerable<ControlOnlyNode> nodes)
    {
        _run = Task.WhenAll(nodes.Select((node, index) => RunAsync(node, index)));
    }

    /// <summary>Reports acknowledged so far.</summary>
    public long Reported => Interlocked.Read(ref _reported);

    /// <summary>Reports that failed (the owner paused, gone or busy) so far.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Stops every loop and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _run;
        _stop.Dispose();
    }

    private async Task RunAsync(ControlOnlyNode node, int index)
    {
        int report = index * 1000;
        while (!_stop.IsCancellationRequested)
        {
            using var call = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            call.CancelAfter(CallTimeout);
            try
            {
                await node.UpdateEndpointsAsync($"127.0.0.1:{1024 + report++ % 60000}", call.Token);
                Interlocked.Increment(ref _reported);
            }
            catch (Exception) when (!_stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref _failed);
                await Task.Delay(50, CancellationToken.None);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
        }
    }
}
