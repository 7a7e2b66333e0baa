namespace MeshNet.Coordination.Sharding;

/// <summary>What the source of a planned move asks the target to take on.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="FromServer">The source (its current owner).</param>
/// <param name="Epoch">The source's epoch: the compare-and-set expects it.</param>
/// <param name="Revision">The revision the source froze the tailnet at.</param>
/// <param name="Cause">planned-move or drain.</param>
/// <param name="IncidentId">The incident the move belongs to.</param>
/// <param name="FrozenFor">How long the source has held the tailnet frozen so far.</param>
internal sealed record HandoverRequest(string Tailnet, string FromServer, ulong Epoch, ulong Revision, string Cause, string IncidentId, TimeSpan FrozenFor);
