using System.Net;
using System.Security.Cryptography;
using MeshNet.Coordination.Auth;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class AuthCachesTests
{
    [Fact]
    public void NoncesAreRefusedTheSecondTimeUntilTheyExpire()
    {
        var cache = new NonceCache(capacity: 10);
        var nonce = RandomNumberGenerator.GetBytes(16);
        cache.TryRecord(nonce, expiresAtMs: 1000, nowMs: 0).Should().Be(NonceCheck.Fresh);
        cache.TryRecord(nonce, expiresAtMs: 1500, nowMs: 500).Should().Be(NonceCheck.Replayed);
        cache.TryRecord(nonce, expiresAtMs: 1000, nowMs: 1000).Should().Be(NonceCheck.Replayed, "still valid at its expiry");
        cache.TryRecord(RandomNumberGenerator.GetBytes(16), expiresAtMs: 3000, nowMs: 1001).Should().Be(NonceCheck.Fresh);
        cache.Count.Should().Be(1, "the expired entry was purged");
    }

    [Fact]
    public void AFullCacheRefusesInsteadOfForgettingLiveNonces()
    {
        var cache = new NonceCache(capacity: 3);
        for (int i = 0; i < 3; i++)
        {
            cache.TryRecord(RandomNumberGenerator.GetBytes(16), 10_000, 0).Should().Be(NonceCheck.Fresh);
        }
        cache.TryRecord(RandomNumberGenerator.GetBytes(16), 10_000, 1).Should().Be(NonceCheck.Full);
        cache.TryRecord(RandomNumberGenerator.GetBytes(16), 20_000, 10_001).Should().Be(NonceCheck.Fresh, "expired entries make room");
        cache.Count.Should().Be(1);
    }

    [Fact]
    public void ProofKeyCacheEvictsTheLeastRecentlyUsed()
    {
        var cache = new ProofKeyCache(capacity: 2);
        byte[] a = RandomNumberGenerator.GetBytes(32), b = RandomNumberGenerator.GetBytes(32), c = RandomNumberGenerator.GetBytes(32);
        cache.Add(a, [.. Enumerable.Repeat((byte)1, 32)]);
        cache.Add(b, [.. Enumerable.Repeat((byte)2, 32)]);
        var buffer = new byte[32];
        cache.TryGet(a, buffer).Should().BeTrue();
        buffer[0].Should().Be(1);
        cache.Add(c, [.. Enumerable.Repeat((byte)3, 32)]);
        cache.Count.Should().Be(2);
        cache.TryGet(b, buffer).Should().BeFalse("b was the least recently used");
        cache.TryGet(a, buffer).Should().BeTrue();
        cache.TryGet(c, buffer).Should().BeTrue();
    }

    [Theory]
    [InlineData(true, "203.0.113.9", true)]
    [InlineData(false, "127.0.0.1", true)]
    [InlineData(false, "127.8.9.10", true)]
    [InlineData(false, "::1", true)]
    [InlineData(false, "::ffff:127.0.0.1", true)]
    [InlineData(false, "203.0.113.9", false)]
    [InlineData(false, "10.0.0.1", false)]
    [InlineData(false, "::ffff:10.0.0.1", false)]
    [InlineData(false, "fe80::1", false)]
    public void PlainHttpIsServedOnlyToLoopback(bool https, string remote, bool permitted) =>
        TransportRule.IsPermitted(https, IPAddress.Parse(remote)).Should().Be(permitted);

    [Fact]
    public void AnUnknownRemoteWithoutTlsIsRefused() => TransportRule.IsPermitted(false, null).Should().BeFalse();
}
