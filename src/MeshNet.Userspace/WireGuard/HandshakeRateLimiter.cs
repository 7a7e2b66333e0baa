using MeshNet.Userspace.Conn;

namespace MeshNet.Userspace.WireGuard;

// STUB: to be implemented (helper "tables").
internal sealed class HandshakeRateLimiter : IDisposable
{
    public HandshakeRateLimiter(TimeProvider timeProvider) => throw new NotImplementedException();

    public bool Allow(in UdpEndpoint source) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
