namespace MeshNet.Coordination.Storage;

/// <summary>A tailnet's saved ACL policy.</summary>
/// <param name="Tailnet">The tailnet it governs.</param>
/// <param name="Text">The policy as saved (HuJSON); empty when the policy was removed.</param>
/// <param name="Version">Increases with every save, removals included; 1 for the first.</param>
/// <param name="Updated">When it was saved.</param>
public sealed record StoredPolicy(string Tailnet, string Text, ulong Version, DateTimeOffset Updated)
{
    /// <summary>The tailnet revision of the save.</summary>
    public ulong Revision { get; init; }
}
