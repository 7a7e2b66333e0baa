namespace MeshNet.Coordination.Sharding;

/// <summary>This server as the cluster knows it.</summary>
/// <param name="Id">The configured server id (unique in the deployment).</param>
/// <param name="Url">Where nodes and other servers reach it (redirect target); may be set once the host knows its address.</param>
/// <param name="Instance">A random id of this process, so that a restarted server with the same id is told apart from the one before.</param>
internal sealed record ServerIdentity(string Id, string Url, string Instance)
{
    public static string NewInstance() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
}
