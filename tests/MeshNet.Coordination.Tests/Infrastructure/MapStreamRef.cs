namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>A stream of the bus with the id of its node.</summary>
internal sealed record MapStreamRef(Bus.MapStream Stream, ulong NodeId);
