using MeshNet.Userspace.Net;
namespace MeshNet.Userspace.Conn;

/// <summary>
/// Decides the fate of one datagram sent on a <see cref="MemoryNetwork"/>: the impairment hook
/// for tests (loss, duplication, inspection). Called on the sending thread, inside
/// <see cref="IUdpBind.Send"/>, before the destination is looked up; so possibly from several
/// threads at once. <paramref name="datagram"/> is valid only during the call. It should not
/// throw: an exception is logged and the datagram is dropped.
/// </summary>
/// <param name="source">The sending bind's address and port.</param>
/// <param name="destination">The address and port the datagram is sent to.</param>
/// <param name="datagram">The datagram's bytes.</param>
/// <returns>What to do with the datagram.</returns>
public delegate MemoryVerdict MemoryFilter(in NetEndpoint source, in NetEndpoint destination, ReadOnlySpan<byte> datagram);
