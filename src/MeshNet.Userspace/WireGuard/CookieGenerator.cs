using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.WireGuard;

// STUB: to be implemented (helper "crypto").
internal sealed class CookieGenerator
{
    public CookieGenerator(WireGuardPublicKey remoteStatic, TimeProvider timeProvider) => throw new NotImplementedException();

    public void AddMacs(Span<byte> message) => throw new NotImplementedException();

    public bool ConsumeReply(ReadOnlySpan<byte> reply) => throw new NotImplementedException();
}
