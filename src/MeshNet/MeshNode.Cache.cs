using System.Globalization;
using MeshNet.Control;
using MeshNet.DataPlane;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using MeshNet.State;

namespace MeshNet;

/// <summary>The netmap cache: starting from it, keeping it fresh, the WireGuard port of the previous run.</summary>
public sealed partial class MeshNode
{
    // Written on the start path, then by the map loop's task (OnNetmap); read by GetStatus.
    private volatile bool _onCachedNetmap;
    private long _netmapReceivedTicks; // UtcTicks of when the netmap in use was received (Interlocked)
    private NetmapCacheWriter? _cacheWriter;
    private volatile ControlFailure? _connectFailure; // the background registration's last failure
    private Task _connectTask = Task.CompletedTask;

    /// <summary>
    /// Loads the cached netmap when the node may start from it: caching on, a store set, the
    /// identity registered (with this control URL), a netmap of this node and tailnet that is not
    /// too old and not forbidden. Otherwise returns null and, when a store is configured, why not
    /// (logged: Information when there is simply none, Warning when one was refused). Also creates
    /// the writer that keeps the cache fresh, or deletes the cache when caching is off.
    /// </summary>
    private async Task<(MeshCachedNetmap? Cache, string? WhyNot)> LoadNetmapCacheAsync(CancellationToken cancellationToken)
    {
        var store = _options.NetmapStore;
        if (store is null)
        {
            return (null, null);
        }
        if (!_options.UseNetmapCache)
        {
            try
            {
                await store.DeleteAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (MeshException e)
            {
                MeshLog.NetmapCacheDeleteFailed(_logger, e.Message);
            }
            return NotUsed("MeshNodeOptions.UseNetmapCache is false (the stored copy was deleted)", refused: false);
        }
        _cacheWriter = new NetmapCacheWriter(store, () => _identity!, _options.NetmapCacheWriteInterval, _time, _logger);
        var identity = _identity!;
        if (!identity.IsRegistered)
        {
            return NotUsed("the node is not registered yet", refused: false);
        }
        MeshCachedNetmap? cache;
        try
        {
            cache = await store.LoadAsync(identity, cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e)
        {
            return NotUsed($"the netmap store could not be read: {e.Message}", refused: true);
        }
        if (cache is null)
        {
            return NotUsed("there is no cached netmap", refused: false);
        }
        if (cache.NodeId != identity.NodeId || !string.Equals(cache.Tailnet, identity.Tailnet, StringComparison.Ordinal))
        {
            return NotUsed($"the cached netmap belongs to another node (node {cache.NodeId} of tailnet {cache.Tailnet}, not node {identity.NodeId} of {identity.Tailnet})", refused: true);
        }
        var age = _time.GetUtcNow() - cache.ReceivedAt;
        if (age > _options.NetmapCacheMaxAge)
        {
            return NotUsed($"the cached netmap is {FormatAge(age)} old, older than NetmapCacheMaxAge ({FormatLimit(_options.NetmapCacheMaxAge)})", refused: true);
        }
        if (cache.Map.NetmapCacheForbidden)
        {
            try
            {
                await store.DeleteAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (MeshException e)
            {
                MeshLog.NetmapCacheDeleteFailed(_logger, e.Message);
            }
            return NotUsed("the coordination service forbids this node to keep its netmap (the stored copy was deleted)", refused: true);
        }
        return (cache, null);
    }

    private (MeshCachedNetmap?, string?) NotUsed(string reason, bool refused)
    {
        if (refused)
        {
            MeshLog.NetmapCacheRefused(_logger, reason);
        }
        else
        {
            MeshLog.NetmapCacheNotUsed(_logger, reason);
        }
        return (null, reason);
    }

    /// <summary>
    /// Starts the data plane from the cache without any call to the coordination service: the
    /// stack with the saved addresses, the cached peers, rules and names; then a handshake to
    /// every peer that was online, so that peers still holding a session from the previous run
    /// switch to a new one at once. Registration and the map stream follow in the background.
    /// </summary>
    private void StartFromCache(MeshCachedNetmap cache, long started)
    {
        var snapshot = cache.ToSnapshot();
        var identity = _identity!;
        _registeredSelf = snapshot.Self;
        _tailnet = cache.Tailnet;
        _addresses = identity.Addresses.Count > 0 ? [.. identity.Addresses] : NameResolver.OrderedAddresses(snapshot.Self);
        _dataPlane!.StartStack(_addresses, _options.Tcp);
        _onCachedNetmap = true;
        Interlocked.Exchange(ref _netmapReceivedTicks, cache.ReceivedAt.UtcTicks);
        PublishNetmap(snapshot);
        var device = _dataPlane.Device;
        var applied = _dataPlane.Peers!.Applied;
        foreach (var peer in snapshot.Peers.Values)
        {
            if (peer.Online && peer.Key is not null && applied.ContainsKey(peer.Key))
            {
                device.InitiateHandshake(peer.Key);
            }
        }
        MeshLog.StartedFromCache(_logger, snapshot.Self.Name, cache.ReceivedAt, snapshot.Peers.Count, (long)_time.GetElapsedTime(started).TotalMilliseconds);
        _connectTask = ConnectInBackgroundAsync(_stopping.Token);
    }

    /// <summary>
    /// Registers (with the usual backoff; a refusal for good is reported through
    /// <see cref="GetStatus"/> and retried at the slowest pace, as the map stream does), then
    /// opens the map stream. Runs on its own task until registered or the node stops.
    /// </summary>
    private async Task ConnectInBackgroundAsync(CancellationToken stop)
    {
        await Task.Yield();
        for (int failures = 0; ; failures = Math.Min(failures + 1, 62))
        {
            try
            {
                var registration = await RegisterAsync(stop).ConfigureAwait(false);
                await ApplyRegistrationAsync(registration, keepAddresses: true, stop).ConfigureAwait(false);
                _connectFailure = null; // registered: an earlier failure is history, not the node's state
                break;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                var failure = ControlFailure.Classify(e, "Registration", _controlUrl);
                _connectFailure = failure;
                MeshLog.CachedStartControlFailed(_logger, failure.Code, failure.Message, failure.Transient);
                var delay = failure.Transient ? _backoff.Next(failures) : _backoff.Next(int.MaxValue);
                try
                {
                    await Task.Delay(delay, _time, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
        StartControlLoops();
    }

    /// <summary>
    /// Binds the WireGuard socket: the configured port, or (port 0) the port of the previous run
    /// when it is free, so that peers holding the old endpoint reach the node; then remembers the
    /// port in the identity.
    /// </summary>
    private async Task StartDeviceAsync(CancellationToken cancellationToken)
    {
        var identity = _identity!;
        int previous = identity.ListenPort;
        if (_options.ListenPort == 0 && previous != 0)
        {
            try
            {
                _dataPlane = await NodeDataPlane.StartDeviceAsync(identity.PrivateKey, _options.BindAddress, previous, _time,
                    _options.LoggerFactory, _logger, cancellationToken).ConfigureAwait(false);
            }
            catch (MeshException e) when (e.ErrorCode is MeshErrorCode.AddressInUse or MeshErrorCode.InvalidConfiguration)
            {
                _dataPlane = null;
            }
        }
        _dataPlane ??= await NodeDataPlane.StartDeviceAsync(identity.PrivateKey, _options.BindAddress, _options.ListenPort, _time,
            _options.LoggerFactory, _logger, cancellationToken).ConfigureAwait(false);
        int bound = _dataPlane.Device.ListenPort;
        if (_options.ListenPort == 0 && previous != 0 && bound != previous)
        {
            MeshLog.PreviousPortTaken(_logger, previous, bound);
        }
        if (bound != previous)
        {
            identity.ListenPort = bound;
            try
            {
                await _options.StateStore!.SaveAsync(identity, cancellationToken).ConfigureAwait(false);
            }
            catch (MeshException e)
            {
                MeshLog.IdentityUpdateNotSaved(_logger, e.Message);
            }
        }
    }

    /// <summary>The health warnings of <see cref="GetStatus"/>.</summary>
    private List<string> HealthWarnings(bool connected, ControlFailure? failure, TimeSpan netmapAge)
    {
        var warnings = new List<string>();
        if (_onCachedNetmap)
        {
            string control = failure is null
                ? "the coordination service has not been reached yet"
                : $"the coordination service is unreachable: {failure.Message}";
            warnings.Add($"running on a cached netmap received {FormatAge(netmapAge)} ago; {control}");
        }
        else if (!connected && failure is not null)
        {
            warnings.Add($"not connected to the coordination service (the netmap in use may be out of date): {failure.Message}");
        }
        if (_cacheWriter?.LastError is { } error)
        {
            warnings.Add($"the netmap cache could not be written: {error}");
        }
        return warnings;
    }

    /// <summary>An age for people: "40.0 days", "3.5 hours", "2 minutes", "12 seconds".</summary>
    internal static string FormatAge(TimeSpan age)
    {
        var culture = CultureInfo.InvariantCulture;
        if (age < TimeSpan.Zero)
        {
            age = TimeSpan.Zero;
        }
        return age switch
        {
            { TotalDays: >= 1 } => string.Create(culture, $"{age.TotalDays:0.0} days"),
            { TotalHours: >= 1 } => string.Create(culture, $"{age.TotalHours:0.0} hours"),
            { TotalMinutes: >= 2 } => string.Create(culture, $"{(int)age.TotalMinutes} minutes"),
            _ => string.Create(culture, $"{(int)age.TotalSeconds} seconds"),
        };
    }

    /// <summary>A configured limit for people: "30 days", "12 hours", "90 seconds".</summary>
    internal static string FormatLimit(TimeSpan limit)
    {
        var culture = CultureInfo.InvariantCulture;
        return limit switch
        {
            { TotalDays: >= 1 } => string.Create(culture, $"{limit.TotalDays:0.##} days"),
            { TotalHours: >= 1 } => string.Create(culture, $"{limit.TotalHours:0.##} hours"),
            { TotalMinutes: >= 1 } => string.Create(culture, $"{limit.TotalMinutes:0.##} minutes"),
            _ => string.Create(culture, $"{limit.TotalSeconds:0.###} seconds"),
        };
    }
}
