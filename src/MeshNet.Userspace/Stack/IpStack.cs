using MeshNet.Userspace.Link;

namespace MeshNet.Userspace.Stack;

// STUB: to be implemented (helper "ip").
/// <summary>Stub.</summary>
public sealed partial class IpStack : IPacketSink, IAsyncDisposable, IDisposable
{
    /// <summary>Stub.</summary>
    public static IpStack Create(IpStackOptions options) => throw new NotImplementedException();

    /// <summary>Stub: binds a UDP socket (port 0 picks one).</summary>
    public UdpSocket BindUdp(System.Net.IPEndPoint localEndPoint) => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public void WritePacket(ReadOnlySpan<byte> packet) => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public ValueTask DisposeAsync() => throw new NotImplementedException();

    /// <summary>Stub.</summary>
    public void Dispose() => throw new NotImplementedException();
}
