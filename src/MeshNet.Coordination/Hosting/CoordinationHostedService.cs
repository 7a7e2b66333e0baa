using Grpc.Core;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Registry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Hosting;

/// <summary>
/// Starts the service with the host (store, server key), runs the maintenance pass every
/// <see cref="CoordinationOptions.MaintenanceInterval"/> on the injected clock (a one-shot timer
/// re-armed at each tick, so a clock that jumps ahead, as a resumed machine's or a test's does,
/// gives one pass rather than one per interval skipped; a tick while a pass runs is skipped),
/// and when the application stops, ends every map stream promptly (Unavailable: nodes reconnect
/// elsewhere or later and resume) so that shutdown does not wait for long-lived calls.
/// </summary>
internal sealed class CoordinationHostedService : IHostedService, IDisposable
{
    private readonly CoordinationRuntime _runtime;
    private readonly NodeLifecycle _lifecycle;
    private readonly TailnetHub _hub;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _timer;
    private CancellationTokenRegistration _stoppingRegistration;
    private int _running;

    public CoordinationHostedService(CoordinationRuntime runtime, NodeLifecycle lifecycle, TailnetHub hub, CoordinationOptions options,
        TimeProvider time, IHostApplicationLifetime lifetime, ILogger<CoordinationHostedService> logger)
    {
        _runtime = runtime;
        _lifecycle = lifecycle;
        _hub = hub;
        _time = time;
        _interval = options.MaintenanceInterval;
        _lifetime = lifetime;
        _logger = logger;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _runtime.EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        _stoppingRegistration = _lifetime.ApplicationStopping.Register(CloseStreams);
        _timer = _time.CreateTimer(static state => ((CoordinationHostedService)state!).OnTimer(), this, _interval, Timeout.InfiniteTimeSpan);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        _stopping.Cancel();
        CloseStreams();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _stoppingRegistration.Dispose();
        _stopping.Dispose();
    }

    private void CloseStreams()
    {
        int ended = _hub.CloseAll(new RpcException(new Status(StatusCode.Unavailable, "the coordination service is stopping; reconnect later")));
        if (ended > 0)
        {
            CoordinationLog.Stopping(_logger, ended);
        }
    }

    private void OnTimer()
    {
        try
        {
            _timer?.Change(_interval, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            return; // stopped
        }
        // A pass still running when the next tick comes: skip the tick.
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            return;
        }
        _ = RunAsync();
    }

    private async Task RunAsync()
    {
        try
        {
            await _lifecycle.RunMaintenanceAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.MaintenanceFailed(_logger, exception);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }
}
