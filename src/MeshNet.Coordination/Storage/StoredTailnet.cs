namespace MeshNet.Coordination.Storage;

/// <summary>A tailnet as stored.</summary>
/// <param name="Name">Unique name: a DNS label.</param>
/// <param name="Domain">The DNS domain of its nodes (<c>name.domain</c>).</param>
/// <param name="Created">When it was created.</param>
/// <param name="NodeKeyLifetime">How long a node key is valid after registration or rotation.</param>
public sealed record StoredTailnet(string Name, string Domain, DateTimeOffset Created, TimeSpan NodeKeyLifetime);
