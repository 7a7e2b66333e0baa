using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>
/// A connection's 4-tuple as seen from this stack: the key of the connection table. A plain
/// value (no allocation to build, compare or hash).
/// </summary>
internal readonly struct TcpFlowKey : IEquatable<TcpFlowKey>
{
    public TcpFlowKey(NetAddress localAddress, ushort localPort, NetAddress remoteAddress, ushort remotePort)
    {
        LocalAddress = localAddress;
        RemoteAddress = remoteAddress;
        LocalPort = localPort;
        RemotePort = remotePort;
    }

    public NetAddress LocalAddress { get; }

    public NetAddress RemoteAddress { get; }

    public ushort LocalPort { get; }

    public ushort RemotePort { get; }

    public NetEndpoint Local => NetEndpoint.Create(LocalAddress, LocalPort);

    public NetEndpoint Remote => NetEndpoint.Create(RemoteAddress, RemotePort);

    public bool Equals(TcpFlowKey other) =>
        LocalPort == other.LocalPort && RemotePort == other.RemotePort &&
        LocalAddress == other.LocalAddress && RemoteAddress == other.RemoteAddress;

    public override bool Equals(object? obj) => obj is TcpFlowKey other && Equals(other);

    public override int GetHashCode()
    {
        UInt128 local = LocalAddress.Bits;
        UInt128 remote = RemoteAddress.Bits;
        return HashCode.Combine((ulong)local, (ulong)remote, (ulong)(remote >> 64) ^ (ulong)(local >> 64), LocalPort | (RemotePort << 16));
    }

    public override string ToString() => $"{Local} <-> {Remote}";
}
