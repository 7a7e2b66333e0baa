using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

/// <summary>Known answers for WireGuard's HASH/MAC/HMAC/KDF and protocol constants.</summary>
[Trait("Category", "Vectors")]
public sealed class NoiseHashVectorTests
{
    // wireguard-go device/kdf_test.go: every vector (key, input, t0, t1, t2), hex.
    public static TheoryData<string, string, string, string, string> KdfVectors => new()
    {
        {
            "746573742d6b6579", "746573742d696e707574",
            "6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633",
            "df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a",
            "fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24"
        },
        {
            "776972656775617264", "776972656775617264",
            "491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8",
            "1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f",
            "31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160"
        },
        {
            "", "",
            "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
            "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
            "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e"
        },
    };

    [Theory]
    [MemberData(nameof(KdfVectors))]
    public void Kdf3_MatchesWireGuardGo(string key, string input, string t0, string t1, string t2)
    {
        var o0 = new byte[32];
        var o1 = new byte[32];
        var o2 = new byte[32];
        NoiseHash.Kdf3(Convert.FromHexString(key), Convert.FromHexString(input), o0, o1, o2);

        Convert.ToHexStringLower(o0).Should().Be(t0);
        Convert.ToHexStringLower(o1).Should().Be(t1);
        Convert.ToHexStringLower(o2).Should().Be(t2);
    }

    [Theory]
    [MemberData(nameof(KdfVectors))]
    public void Kdf2_MatchesWireGuardGo(string key, string input, string t0, string t1, string t2)
    {
        _ = t2;
        var o0 = new byte[32];
        var o1 = new byte[32];
        NoiseHash.Kdf2(Convert.FromHexString(key), Convert.FromHexString(input), o0, o1);

        Convert.ToHexStringLower(o0).Should().Be(t0);
        Convert.ToHexStringLower(o1).Should().Be(t1);
    }

    [Theory]
    [MemberData(nameof(KdfVectors))]
    public void Kdf1_MatchesWireGuardGo(string key, string input, string t0, string t1, string t2)
    {
        _ = (t1, t2);
        var o0 = new byte[32];
        NoiseHash.Kdf1(Convert.FromHexString(key), Convert.FromHexString(input), o0);

        Convert.ToHexStringLower(o0).Should().Be(t0);
    }

    [Fact]
    public void InitialChainingKey_IsHashOfConstruction()
    {
        Convert.ToHexStringLower(NoiseHash.InitialChainingKey)
            .Should().Be("60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
        var computed = new byte[32];
        NoiseHash.Hash(NoiseHash.Construction, computed);
        computed.Should().Equal(NoiseHash.InitialChainingKey.ToArray());
    }

    [Fact]
    public void InitialHash_IsHashOfChainingKeyAndIdentifier()
    {
        Convert.ToHexStringLower(NoiseHash.InitialHash)
            .Should().Be("2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
        var computed = new byte[32];
        NoiseHash.Hash(NoiseHash.InitialChainingKey, NoiseHash.Identifier, computed);
        computed.Should().Equal(NoiseHash.InitialHash.ToArray());
    }

    [Fact]
    public void ProtocolStrings()
    {
        NoiseHash.Construction.SequenceEqual("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"u8).Should().BeTrue();
        NoiseHash.Identifier.SequenceEqual("WireGuard v1 zx2c4 Jason@zx2c4.com"u8).Should().BeTrue();
        NoiseHash.LabelMac1.SequenceEqual("mac1----"u8).Should().BeTrue();
        NoiseHash.LabelCookie.SequenceEqual("cookie--"u8).Should().BeTrue();
    }

    // RFC 2104 HMAC over BLAKE2s-256 (block 64), cross-checked with CPython's
    // hmac.new(key, msg, hashlib.blake2s); the first case covers a key longer than the block.
    [Theory]
    [InlineData(65, "616263", "44d87b3939dec16bc76cbd83e3982ac0a4eafab8a5b87c8c2adbd0da7d5c9695")]
    [InlineData(64, "", "4a4f8f181c931253202b2d7a77e2a612f65580f4b0d56108f7f275f22b63ae00")]
    public void Hmac_KnownAnswers(int keyLength, string message, string expected)
    {
        byte[] key = Enumerable.Range(0, keyLength).Select(i => (byte)i).ToArray();
        var output = new byte[32];
        NoiseHash.Hmac(key, Convert.FromHexString(message), output);
        Convert.ToHexStringLower(output).Should().Be(expected);
    }

    [Fact]
    public void Hmac_32ByteKey_100ByteMessage()
    {
        byte[] key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        byte[] message = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        var output = new byte[32];
        NoiseHash.Hmac(key, message, output);
        Convert.ToHexStringLower(output).Should().Be("a81c95080ba2a7c4ed1b7b4c21dec2c4fd6dc9f03ff37b6d65289dc95a7d1ef1");
    }

    [Fact]
    public void Mac_IsKeyedBlake2s128()
    {
        byte[] key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var output = new byte[16];
        NoiseHash.Mac(key, "abc"u8, output);
        Convert.ToHexStringLower(output).Should().Be("61ba5f165c194692e09d12520cc4c74a");
    }
}
