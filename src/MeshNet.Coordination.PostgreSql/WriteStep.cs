namespace MeshNet.Coordination.PostgreSql;

/// <summary>What the body of a fenced write (<see cref="PostgresFencing.WriteAsync{T}"/>) did.</summary>
/// <param name="Apply">False: nothing applies (the transaction is rolled back, no revision used).</param>
/// <param name="Value">The write's result.</param>
/// <param name="NodeId">The node the change-log entry names (0: none).</param>
/// <param name="Detail">The change-log entry's detail.</param>
internal readonly record struct WriteStep<T>(bool Apply, T Value, ulong NodeId = 0, string Detail = "");
