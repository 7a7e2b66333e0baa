using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Sharding;
using MeshNet.Coordination.Validation;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Hosting;

/// <summary>
/// Starts the service with the host (store, server key, then this server's registration and
/// leases), records the URL the host listens on once it is bound (unless one is configured),
/// runs the maintenance pass every <see cref="CoordinationOptions.MaintenanceInterval"/> on the
/// injected clock (a one-shot timer re-armed at each tick, so a clock that jumps ahead, as a
/// resumed machine's or a test's does, gives one pass rather than one per interval skipped; a tick
/// while a pass runs is skipped), and when the application stops, ends every map stream promptly
/// (nodes reconnect elsewhere or later and resume) and gives every lease up so that standbys
/// take the tailnets at once.
/// </summary>
internal sealed class CoordinationHostedService : IHostedService, IDisposable
{
    private readonly CoordinationRuntime _runtime;
    private readonly NodeLifecycle _lifecycle;
    private readonly TailnetHub _hub;
    private readonly LeaseKeeper _keeper;
    private readonly ServerDirectory _directory;
    private readonly Rebalancer _rebalancer;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly bool _urlConfigured;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly IServer _server;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _timer;
    private CancellationTokenRegistration _stoppingRegistration;
    private CancellationTokenRegistration _startedRegistration;
    private int _running;

    public CoordinationHostedService(CoordinationRuntime runtime, NodeLifecycle lifecycle, TailnetHub hub, LeaseKeeper keeper, ServerDirectory directory,
        Rebalancer rebalancer, CoordinationOptions options, TimeProvider time, IHostApplicationLifetime lifetime, IServer server, ILogger<CoordinationHostedService> logger)
    {
        _runtime = runtime;
        _lifecycle = lifecycle;
        _hub = hub;
        _keeper = keeper;
        _directory = directory;
        _rebalancer = rebalancer;
        _time = time;
        _interval = options.MaintenanceInterval;
        _urlConfigured = options.AdvertisedUrl is not null;
        _lifetime = lifetime;
        _server = server;
        _logger = logger;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _runtime.EnsureStartedAsync(cancellationToken).ConfigureAwait(false);
        await _keeper.StartAsync(cancellationToken).ConfigureAwait(false);
        _stoppingRegistration = _lifetime.ApplicationStopping.Register(CloseStreams);
        _startedRegistration = _lifetime.ApplicationStarted.Register(() => _ = OnStartedAsync());
        _timer = _time.CreateTimer(static state => ((CoordinationHostedService)state!).OnTimer(), this, _interval, Timeout.InfiniteTimeSpan);
        _rebalancer.Start();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        _rebalancer.Dispose();
        _stopping.Cancel();
        CloseStreams();
        await _keeper.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _timer?.Dispose();
        _stoppingRegistration.Dispose();
        _startedRegistration.Dispose();
        _stopping.Dispose();
    }

    /// <summary>The host has bound its addresses: record where this server is reachable, and tell nodes the server set.</summary>
    private async Task OnStartedAsync()
    {
        try
        {
            if (!_urlConfigured && ListenAddress() is { } url)
            {
                await _keeper.SetUrlAsync(url, _stopping.Token).ConfigureAwait(false);
            }
            await _directory.RefreshAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            CoordinationLog.MaintenanceFailed(_logger, exception);
        }
    }

    private string? ListenAddress()
    {
        var addresses = _server.Features.Get<IServerAddressesFeature>()?.Addresses;
        if (addresses is null || addresses.Count == 0)
        {
            return null;
        }
        return (addresses.FirstOrDefault(address => address.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) ?? addresses.First()).TrimEnd('/');
    }

    private void CloseStreams()
    {
        int ended = _hub.CloseAll(Failures.NoOwner("(all)", TimeSpan.FromMilliseconds(250), "this coordination server is stopping"));
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
            await _directory.RefreshAsync(_stopping.Token).ConfigureAwait(false);
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
