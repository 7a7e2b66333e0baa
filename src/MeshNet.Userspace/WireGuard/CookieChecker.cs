using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.WireGuard;

// STUB: to be implemented (helper "crypto").
internal sealed class CookieChecker
{
    public CookieChecker(WireGuardPublicKey localStatic, TimeProvider timeProvider) => throw new NotImplementedException();

    public bool CheckMac1(ReadOnlySpan<byte> message) => throw new NotImplementedException();

    public bool CheckMac2(ReadOnlySpan<byte> message, in UdpEndpoint source) => throw new NotImplementedException();

    public void CreateReply(ReadOnlySpan<byte> message, uint receiverIndex, in UdpEndpoint source, Span<byte> reply) => throw new NotImplementedException();
}
