using System.Globalization;
using MeshNet.Diagnostics;
using MeshNet.Netmap;
using Microsoft.Extensions.Logging;

namespace MeshNet.State;

/// <summary>
/// A node's netmap cache (<see cref="MeshNodeOptions.NetmapStore"/>): decides at start whether
/// the stored netmap may be used (<see cref="LoadAsync"/>), keeps the store fresh afterwards
/// through a <see cref="NetmapCacheWriter"/>, and tracks where the netmap in use came from
/// (<see cref="OnCachedNetmap"/>) and when it was received (<see cref="ReceivedAt"/>).
/// </summary>
/// <remarks>
/// <para><b>Thread safety</b>: <see cref="LoadAsync"/> and <see cref="UseCached"/> run on the
/// start path; <see cref="OnLiveNetmap"/> and <see cref="Save"/> on the map loop's task (one at
/// a time); the properties may be read from any thread.</para>
/// <para><b>Ownership</b>: owns the writer (created by <see cref="LoadAsync"/> when caching is
/// on); the store is the caller's.</para>
/// <para><b>Disposal</b>: <see cref="DisposeAsync"/> flushes the latest netmap handed to
/// <see cref="Save"/> and stops the writer; after it, saves are ignored. Idempotent.</para>
/// </remarks>
internal sealed class NodeNetmapCache : IAsyncDisposable
{
    private readonly MeshNodeOptions _options;
    private readonly Func<MeshNodeIdentity> _identity;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // Written on the start path, then by the map loop's task (OnLiveNetmap); read by GetStatus.
    private volatile bool _onCachedNetmap;
    private long _receivedTicks; // UtcTicks of when the netmap in use was received (Interlocked)
    private NetmapCacheWriter? _writer; // set on the start path, before any netmap

    /// <param name="options">The node's settings (the store, whether to use it, its age limit and write interval).</param>
    /// <param name="identity">The node's current identity (its key protects the saved bytes; a key rotation replaces it).</param>
    /// <param name="time">The clock and timers.</param>
    /// <param name="logger">The node's log.</param>
    public NodeNetmapCache(MeshNodeOptions options, Func<MeshNodeIdentity> identity, TimeProvider time, ILogger logger)
    {
        _options = options;
        _identity = identity;
        _time = time;
        _logger = logger;
    }

    /// <summary>True while the node runs on the cached netmap: from a start from the cache until the first live netmap.</summary>
    public bool OnCachedNetmap => _onCachedNetmap;

    /// <summary>When the netmap in use was received (the cached one's original time while it is in use).</summary>
    public DateTimeOffset ReceivedAt => new(Interlocked.Read(ref _receivedTicks), TimeSpan.Zero);

    /// <summary>Why the last write to the store failed; null once one succeeded again, or when none failed or caching is off.</summary>
    public string? WriteError => _writer?.LastError;

    /// <summary>
    /// Loads the cached netmap when the node may start from it: caching on, a store set, the
    /// identity registered (with this control URL), a netmap of this node and tailnet that is not
    /// too old and not forbidden. Otherwise returns null and, when a store is configured, why not
    /// (logged: Information when there is simply none, Warning when one was refused). Also creates
    /// the writer that keeps the cache fresh, or deletes the cache when caching is off.
    /// </summary>
    public async Task<(MeshCachedNetmap? Cache, string? WhyNot)> LoadAsync(CancellationToken cancellationToken)
    {
        var store = _options.NetmapStore;
        if (store is null)
        {
            return (null, null);
        }
        if (!_options.UseNetmapCache)
        {
            await DeleteAsync(store, cancellationToken).ConfigureAwait(false);
            return NotUsed("MeshNodeOptions.UseNetmapCache is false (the stored copy was deleted)", refused: false);
        }
        _writer = new NetmapCacheWriter(store, _identity, _options.NetmapCacheWriteInterval, _time, _logger);
        var identity = _identity();
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
            await DeleteAsync(store, cancellationToken).ConfigureAwait(false);
            return NotUsed("the coordination service forbids this node to keep its netmap (the stored copy was deleted)", refused: true);
        }
        return (cache, null);
    }

    /// <summary>The node starts from <paramref name="cache"/>: it is the netmap in use until a live one arrives.</summary>
    public void UseCached(MeshCachedNetmap cache)
    {
        _onCachedNetmap = true;
        Interlocked.Exchange(ref _receivedTicks, cache.ReceivedAt.UtcTicks);
    }

    /// <summary>A live netmap arrived at <paramref name="receivedAt"/>: it replaces the cached one, if that was in use.</summary>
    public void OnLiveNetmap(NetmapSnapshot map, DateTimeOffset receivedAt)
    {
        Interlocked.Exchange(ref _receivedTicks, receivedAt.UtcTicks);
        if (_onCachedNetmap)
        {
            _onCachedNetmap = false;
            MeshLog.LiveNetmapReplacedCache(_logger, map.Peers.Count);
        }
    }

    /// <summary>Hands the netmap the node now runs on to the writer (coalesced; nothing when caching is off).</summary>
    public void Save(NetmapSnapshot map, string tailnet, DateTimeOffset receivedAt) => _writer?.OnNetmap(map, tailnet, receivedAt);

    /// <summary>Flushes the latest netmap handed to <see cref="Save"/> and stops the writer (see the class remarks).</summary>
    public ValueTask DisposeAsync() => _writer?.DisposeAsync() ?? ValueTask.CompletedTask;

    private async Task DeleteAsync(IMeshNetmapStore store, CancellationToken cancellationToken)
    {
        try
        {
            await store.DeleteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (MeshException e)
        {
            MeshLog.NetmapCacheDeleteFailed(_logger, e.Message);
        }
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
