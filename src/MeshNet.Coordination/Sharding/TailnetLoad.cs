namespace MeshNet.Coordination.Sharding;

/// <summary>One tailnet's share of a server's load.</summary>
/// <param name="Tailnet">The tailnet.</param>
/// <param name="Streams">Its open map streams.</param>
/// <param name="Nodes">Its nodes.</param>
/// <param name="WeightedChangeRate">Its committed changes per second × its nodes.</param>
internal sealed record TailnetLoad(string Tailnet, int Streams, int Nodes, double WeightedChangeRate);
