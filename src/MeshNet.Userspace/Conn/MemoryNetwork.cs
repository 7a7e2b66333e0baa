namespace MeshNet.Userspace.Conn;

// STUB: to be implemented (helper "binds").
/// <summary>Stub.</summary>
public sealed class MemoryNetwork
{
}
