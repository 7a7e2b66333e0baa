using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Tests.Storage;

/// <summary>A store under contract test: both of its interfaces, and what disposes it.</summary>
public sealed class ContractStore : IAsyncDisposable
{
    private readonly Func<ValueTask> _dispose;

    public ContractStore(ICoordinationStore data, ICoordinationLeaseStore leases, Func<ValueTask> dispose)
    {
        Data = data;
        Leases = leases;
        _dispose = dispose;
    }

    public ICoordinationStore Data { get; }

    public ICoordinationLeaseStore Leases { get; }

    /// <summary>Registers server <paramref name="server"/> (instance "i1") if needed and claims the tailnet's lease: the fence of its writes.</summary>
    public async Task<TailnetFence> OwnAsync(string tailnet, string server = "s1", string instance = "i1")
    {
        await Leases.RegisterServerAsync(server, $"http://{server}.test", instance, default);
        var grants = await Leases.ClaimAsync(Claim(server, instance, TimeSpan.FromMinutes(5), tailnet), default);
        var grant = grants.Should().ContainSingle().Subject;
        grant.Quarantined.Should().BeFalse();
        return new TailnetFence(tailnet, grant.Epoch);
    }

    /// <summary>A claim with no sticky period and no quarantine unless asked.</summary>
    public static LeaseClaim Claim(string server, string instance, TimeSpan ttl, string? tailnet = null, int limit = 100, TimeSpan? quarantine = null,
        TimeSpan? sticky = null) =>
        new(server, instance, ttl, limit, sticky ?? TimeSpan.Zero, quarantine ?? TimeSpan.Zero, tailnet);

    public ValueTask DisposeAsync() => _dispose();
}
