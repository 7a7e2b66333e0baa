namespace MeshNet.Coordination.Storage;

/// <summary>A lease a server holds.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Epoch">The lease's epoch (fences the tailnet's writes).</param>
public readonly record struct HeldLease(string Tailnet, ulong Epoch);
