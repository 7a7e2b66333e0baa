using Grpc.Core;
using MeshNet.Control.V1;

namespace MeshNet.Sharding.Tests.Infrastructure;

/// <summary>
/// Saves a tailnet's policy over and over (each save a different text and its own idempotency
/// key) through whichever server answers, retrying a save that failed with the same key, and
/// records what was acknowledged: a history to check against the change log after faults.
/// </summary>
internal sealed class PolicyWriter
{
    private readonly ShardedDeployment _deployment;
    private readonly string _tailnet;
    private readonly List<(string Key, ulong Version)> _acknowledged = [];
    private readonly Lock _gate = new();
    private int _attempts;

    public PolicyWriter(ShardedDeployment deployment, string tailnet)
    {
        _deployment = deployment;
        _tailnet = tailnet;
    }

    public IReadOnlyList<(string Key, ulong Version)> Acknowledged
    {
        get
        {
            lock (_gate)
            {
                return [.. _acknowledged];
            }
        }
    }

    /// <summary>Saves until <paramref name="stop"/>, one at a time, every <paramref name="interval"/>.</summary>
    public async Task RunAsync(TimeSpan interval, CancellationToken stop)
    {
        int index = 0;
        while (!stop.IsCancellationRequested)
        {
            var key = $"{_tailnet}-save-{index++}";
            // Every node may reach every other (so netmaps list every peer), marked with the save's key.
            var request = new SetPolicyRequest
            {
                Tailnet = _tailnet,
                Policy = $$"""{ /* {{key}} */ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }""",
            };
            for (int attempt = 0; attempt < 20 && !stop.IsCancellationRequested; attempt++)
            {
                Interlocked.Increment(ref _attempts);
                try
                {
                    var response = await _deployment.CallAsync(admin =>
                        admin.SetPolicyAsync(request, ShardedDeployment.AdminHeaders(key), deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync);
                    lock (_gate)
                    {
                        _acknowledged.Add((key, response.Version));
                    }
                    break;
                }
                catch (RpcException)
                {
                    // Unknown outcome: the retry with the same key applies it at most once.
                }
                catch (InvalidOperationException)
                {
                }
            }
            try
            {
                await Task.Delay(interval, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }
}
