using MeshNet.Coordination.Storage;
using MeshNet.Protocol;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination.Hosting;

/// <summary>
/// Starts the service once: creates or migrates the store, then loads (or generates and
/// persists) the server key. Every handler awaits <see cref="EnsureStartedAsync"/>, which is
/// cheap once done; a failed start is retried by the next caller. Disposing zeroes the key.
/// </summary>
internal sealed class CoordinationRuntime : IDisposable
{
    private readonly ICoordinationStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private Task? _start;
    private ControlServerKey? _serverKey;

    public CoordinationRuntime(ICoordinationStore store, TimeProvider time, ILogger<CoordinationRuntime> logger)
    {
        _store = store;
        _time = time;
        _logger = logger;
    }

    /// <summary>The server key; only after <see cref="EnsureStartedAsync"/> completed.</summary>
    public ControlServerKey ServerKey => _serverKey ?? throw new InvalidOperationException("The coordination service has not started.");

    /// <summary>When this process started serving (ephemeral nodes get their full timeout after a restart).</summary>
    public DateTimeOffset StartedAt { get; private set; }

    public Task EnsureStartedAsync(CancellationToken cancellationToken)
    {
        Task start;
        lock (_gate)
        {
            if (_start is null || _start.IsFaulted || _start.IsCanceled)
            {
                _start = StartAsync();
            }
            start = _start;
        }
        return start.IsCompletedSuccessfully ? Task.CompletedTask : start.WaitAsync(cancellationToken);
    }

    public void Dispose() => _serverKey?.Dispose();

    private async Task StartAsync()
    {
        await Task.Yield();
        int version = await _store.InitializeAsync(CancellationToken.None).ConfigureAwait(false);
        using var candidate = ControlServerKey.Generate();
        var candidateSecret = new byte[32];
        byte[]? stored = null;
        try
        {
            candidate.ExportSecret(candidateSecret);
            stored = await _store.GetOrAddServerKeyAsync(candidateSecret, _time.GetUtcNow(), CancellationToken.None).ConfigureAwait(false);
            if (stored.AsSpan().SequenceEqual(candidateSecret))
            {
                CoordinationLog.ServerKeyGenerated(_logger);
            }
            _serverKey = ControlServerKey.FromBytes(stored);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(candidateSecret);
            if (stored is not null)
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(stored);
            }
        }
        StartedAt = _time.GetUtcNow();
        CoordinationLog.Started(_logger, version);
    }
}
