namespace MeshNet.TestSupport;

/// <summary>PostgreSQL cannot run on this machine (see <see cref="PostgresCluster.FindMissing"/>); the message names what is missing and how to install it.</summary>
public sealed class PostgresUnavailableException(string message) : Exception(message);
