namespace MeshNet.TestSupport;

/// <summary>
/// Many <see cref="ControlOnlyNode"/>s of one tailnet, joined through the deployment's servers and
/// streaming their netmaps; waits on what they see, and sums up what they recorded.
/// </summary>
/// <remarks>Not thread-safe for joining; the nodes themselves are.</remarks>
public sealed class NodeFleet : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    private NodeFleet(List<ControlOnlyNode> nodes) => Nodes = nodes;

    public List<ControlOnlyNode> Nodes { get; }

    /// <summary>Joins <paramref name="count"/> nodes (a few at a time) and waits until each has its first netmap.</summary>
    public static async Task<NodeFleet> JoinAsync(ShardedDeployment deployment, string authKey, int count, string prefix = "n")
    {
        TestHostThreadPool.Reserve();
        var nodes = new List<ControlOnlyNode>();
        var fleet = new NodeFleet(nodes);
        try
        {
            using var timeout = new CancellationTokenSource(Timeout);
            using var gate = new SemaphoreSlim(16);
            var joins = Enumerable.Range(0, count).Select(async i =>
            {
                await gate.WaitAsync(timeout.Token);
                try
                {
                    // Each node is given the servers in another order: they join wherever, and are redirected.
                    var urls = deployment.Urls.Skip(i % deployment.Urls.Count).Concat(deployment.Urls.Take(i % deployment.Urls.Count)).ToList();
                    var node = await ControlOnlyNode.JoinAsync(urls, authKey, $"{prefix}{i}", timeout.Token);
                    lock (nodes)
                    {
                        nodes.Add(node);
                    }
                    node.Start();
                    await node.FirstNetmap.WaitAsync(timeout.Token);
                }
                finally
                {
                    gate.Release();
                }
            });
            await Task.WhenAll(joins);
            return fleet;
        }
        catch
        {
            await fleet.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds for every node.</summary>
    public async Task WaitAllAsync(Func<ControlOnlyNode, bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Timeout);
        while (true)
        {
            var lagging = Nodes.Where(node => !condition(node)).ToList();
            if (lagging.Count == 0)
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                var first = lagging[0];
                var last = first.Events.Count > 0 ? first.Events[^1] : null;
                throw new TimeoutException($"{lagging.Count} of {Nodes.Count} nodes never got to: {what} (first: {first.Name} on {first.Server}, " +
                    $"epoch {first.Epoch}, policy version {first.PolicyVersion}, {first.PeerCount} peers, in a gap: {first.InGap}, last message {last?.At:HH:mm:ss.fff} seq {last?.Sequence} from {last?.Server}; " +
                    $"last failures: {string.Join(" | ", first.Failures.TakeLast(5).Select(f => $"{f.At:HH:mm:ss.fff} {f.What}"))}).");
            }
            await Task.Delay(25);
        }
    }

    /// <summary>Every node's problems (sequence gaps, full netmaps, epochs going back).</summary>
    public IReadOnlyList<string> Problems(bool allowFullMaps = false) => [.. Nodes.SelectMany(node => node.Problems(allowFullMaps))];

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(Nodes.Select(node => node.DisposeAsync().AsTask()));
    }
}
