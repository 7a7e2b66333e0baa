namespace MeshNet.Coordination.Storage;

/// <summary>The result of <see cref="ICoordinationLeaseStore.RenewAsync"/>.</summary>
/// <param name="Held">Every lease the server holds now, renewed, with its epoch.</param>
/// <param name="Registered">
/// False when the server's row names another instance: a newer process took this server id
/// over, and this one must stop serving.
/// </param>
public sealed record LeaseRenewal(IReadOnlyList<HeldLease> Held, bool Registered);
