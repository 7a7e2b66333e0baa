using MeshNet.Coordination.Storage;

namespace MeshNet.Coordination.Sharding;

/// <summary>What the <see cref="LeaseKeeper"/> tells the rest of the server. Called without the keeper's lock held.</summary>
internal interface ILeaseListener
{
    /// <summary>This server now holds <paramref name="grant"/> (a claim, an on-demand claim, a handover to it).</summary>
    void OnLeaseGranted(LeaseGrant grant);

    /// <summary>This server must stop serving <paramref name="tailnet"/> (epoch <paramref name="epoch"/>) now.</summary>
    void OnLeaseLost(string tailnet, ulong epoch, LeaseLoss reason);
}
