using MeshNet.TestSupport;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

[Trait("Category", "Unit")]
public sealed class NoiseHashTests
{
    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Kdf2_OutputMayAliasChainingKey()
    {
        byte[] ck = RandomBytes(32, 1);
        byte[] input = RandomBytes(32, 2);
        var expected0 = new byte[32];
        var expected1 = new byte[32];
        NoiseHash.Kdf2(ck, input, expected0, expected1);

        var key = new byte[32];
        NoiseHash.Kdf2(ck, input, ck, key); // C, k = KDF2(C, x): the chaining key updated in place

        ck.Should().Equal(expected0);
        key.Should().Equal(expected1);
    }

    [Fact]
    public void Kdf2_OutputsMayAliasBothInputs()
    {
        byte[] ck = RandomBytes(32, 3);
        byte[] input = RandomBytes(32, 4);
        var expected0 = new byte[32];
        var expected1 = new byte[32];
        NoiseHash.Kdf2(ck, input, expected0, expected1);

        NoiseHash.Kdf2(ck, input, input, ck); // swapped roles: t0 over the input, t1 over the chaining key

        input.Should().Equal(expected0);
        ck.Should().Equal(expected1);
    }

    [Fact]
    public void Kdf3_OutputsMayAliasInputs()
    {
        byte[] ck = RandomBytes(32, 5);
        byte[] psk = RandomBytes(32, 6);
        var expected = new byte[96];
        NoiseHash.Kdf3(ck, psk, expected.AsSpan(0, 32), expected.AsSpan(32, 32), expected.AsSpan(64, 32));

        var tau = new byte[32];
        NoiseHash.Kdf3(ck, psk, ck, tau, psk); // (C, tau, k) = KDF3(C, psk) with k written over the psk

        ck.Should().Equal(expected.AsSpan(0, 32).ToArray());
        tau.Should().Equal(expected.AsSpan(32, 32).ToArray());
        psk.Should().Equal(expected.AsSpan(64, 32).ToArray());
    }

    [Fact]
    public void Kdf1_OutputMayAliasBothInputsAtOnce()
    {
        byte[] buffer = RandomBytes(32, 7);
        var expected = new byte[32];
        NoiseHash.Kdf1(buffer, buffer, expected);

        NoiseHash.Kdf1(buffer, buffer, buffer);

        buffer.Should().Equal(expected);
    }

    [Fact]
    public void Hash_OfTwoParts_EqualsHashOfConcatenation_AndMayUpdateInPlace()
    {
        byte[] h = RandomBytes(32, 8);
        byte[] x = RandomBytes(48, 9);
        var expected = new byte[32];
        NoiseHash.Hash([.. h, .. x], expected);

        NoiseHash.Hash(h, x, h);

        h.Should().Equal(expected);
    }

    [Fact]
    public void Hmac_OutputMayAliasKeyAndData()
    {
        byte[] buffer = RandomBytes(32, 10);
        var expected = new byte[32];
        NoiseHash.Hmac(buffer, buffer, expected);

        NoiseHash.Hmac(buffer, buffer, buffer);

        buffer.Should().Equal(expected);
    }

    [Fact]
    public void Hmac_IsNotKeyedBlake2s()
    {
        byte[] key = RandomBytes(32, 11);
        var hmac = new byte[32];
        var keyed = new byte[32];
        NoiseHash.Hmac(key, "data"u8, hmac);
        Blake2s.KeyedHash(key, "data"u8, keyed);
        hmac.Should().NotEqual(keyed);
    }

    [Fact]
    public void Kdf_OutputsDependOnEveryInputBit()
    {
        byte[] ck = RandomBytes(32, 12);
        byte[] input = RandomBytes(32, 13);
        var reference = new byte[32];
        NoiseHash.Kdf1(ck, input, reference);

        input[31] ^= 0x80;
        var flipped = new byte[32];
        NoiseHash.Kdf1(ck, input, flipped);

        flipped.Should().NotEqual(reference);
    }

    [Fact]
    public void WrongSizes_Throw()
    {
        var ok = new byte[32];
        FluentActions.Invoking(() => NoiseHash.Hash("a"u8, new byte[31])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Hash("a"u8, "b"u8, new byte[33])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Mac(ok, "a"u8, new byte[32])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Hmac(ok, "a"u8, new byte[16])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Kdf1(ok, ok, new byte[16])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Kdf2(ok, ok, new byte[32], new byte[64])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Kdf3(ok, ok, new byte[32], new byte[32], [])).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void OverlappingKdfOutputs_Throw()
    {
        var buffer = new byte[64];
        byte[] ck = RandomBytes(32, 14);
        FluentActions.Invoking(() => NoiseHash.Kdf2(ck, ck, buffer.AsSpan(0, 32), buffer.AsSpan(16, 32)))
            .Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => NoiseHash.Kdf3(ck, ck, buffer.AsSpan(0, 32), buffer.AsSpan(32, 32), buffer.AsSpan(0, 32)))
            .Should().Throw<ArgumentException>();
    }

    [Fact]
    public void HandshakeHashing_DoesNotAllocate()
    {
        byte[] ck = RandomBytes(32, 15);
        byte[] input = RandomBytes(32, 16);
        var t0 = new byte[32];
        var t1 = new byte[32];
        var t2 = new byte[32];
        var mac = new byte[16];
        NoiseHash.Kdf3(ck, input, t0, t1, t2); // warm up
        NoiseHash.Hmac(ck, input, t0);
        NoiseHash.Hash(ck, input, t0);
        NoiseHash.Mac(ck, input, mac);

        AllocationMeter.LeastOf(3, () =>
        {
            for (int i = 0; i < 100; i++)
            {
                NoiseHash.Kdf3(ck, input, t0, t1, t2);
                NoiseHash.Kdf2(ck, input, ck, t1);
                NoiseHash.Kdf1(ck, input, ck);
                NoiseHash.Hmac(ck, input, t0);
                NoiseHash.Hash(ck, input, t0);
                NoiseHash.Mac(ck, input, mac);
            }
        }).Should().Be(0);
    }
}
