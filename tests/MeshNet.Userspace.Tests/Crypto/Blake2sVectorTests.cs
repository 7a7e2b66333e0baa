using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

/// <summary>Known-answer tests for BLAKE2s: RFC 7693 and the official BLAKE2 KAT (blake2s-kat.txt / blake2-kat.json).</summary>
[Trait("Category", "Vectors")]
public sealed class Blake2sVectorTests
{
    private static byte[] Sequence(int length) => Enumerable.Range(0, length).Select(i => (byte)i).ToArray();

    private static string Hash(ReadOnlySpan<byte> data, int outputSize)
    {
        Span<byte> output = stackalloc byte[outputSize];
        Blake2s.Hash(data, output);
        return Convert.ToHexStringLower(output);
    }

    private static string KeyedHash(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, int outputSize)
    {
        Span<byte> output = stackalloc byte[outputSize];
        Blake2s.KeyedHash(key, data, output);
        return Convert.ToHexStringLower(output);
    }

    [Fact]
    public void Rfc7693AppendixB_Abc()
    {
        Hash("abc"u8, 32).Should().Be("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
    }

    [Fact]
    public void Abc_With128BitOutput()
    {
        Hash("abc"u8, 16).Should().Be("aa4938119b1dc7b87cbad0ffd200d0ae");
    }

    // RFC 7693 Appendix E: the deterministic input generator of the self-test.
    private static void SelfTestSequence(Span<byte> output, uint seed)
    {
        uint a = unchecked(0xDEAD4BAD * seed);
        uint b = 1;
        for (int i = 0; i < output.Length; i++)
        {
            uint t = unchecked(a + b);
            a = b;
            b = t;
            output[i] = (byte)(t >> 24);
        }
    }

    [Fact]
    public void Rfc7693AppendixE_SelfTestGrandHash()
    {
        int[] digestLengths = [16, 20, 28, 32];
        int[] inputLengths = [0, 3, 64, 65, 255, 1024];
        Span<byte> input = new byte[1024];
        Span<byte> digest = stackalloc byte[32];
        Span<byte> key = stackalloc byte[32];

        var grand = new Blake2s(32);
        foreach (int outLength in digestLengths)
        {
            foreach (int inLength in inputLengths)
            {
                SelfTestSequence(input[..inLength], (uint)inLength);
                Blake2s.Hash(input[..inLength], digest[..outLength]);
                grand.Update(digest[..outLength]);

                SelfTestSequence(key[..outLength], (uint)outLength);
                Blake2s.KeyedHash(key[..outLength], input[..inLength], digest[..outLength]);
                grand.Update(digest[..outLength]);
            }
        }
        grand.Finish(digest);

        Convert.ToHexStringLower(digest).Should().Be("6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
    }

    // Official KAT, unkeyed: input 00 01 02 ... (length - 1).
    [Theory]
    [InlineData(0, "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9")]
    [InlineData(1, "e34d74dbaf4ff4c6abd871cc220451d2ea2648846c7757fbaac82fe51ad64bea")]
    [InlineData(63, "e57cb79487dd57902432b250733813bd96a84efce59f650fac26e6696aefafc3")]
    [InlineData(64, "56f34e8b96557e90c1f24b52d0c89d51086acf1b00f634cf1dde9233b8eaaa3e")]
    [InlineData(65, "1b53ee94aaf34e4b159d48de352c7f0661d0a40edff95a0b1639b4090e974472")]
    [InlineData(255, "f03f5789d3336b80d002d59fdf918bdb775b00956ed5528e86aa994acb38fe2d")]
    public void Kat_Unkeyed(int length, string expected)
    {
        Hash(Sequence(length), 32).Should().Be(expected);
    }

    // Official KAT, keyed: key 00..1f, input 00 01 02 ... (length - 1).
    [Theory]
    [InlineData(0, "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49")]
    [InlineData(1, "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1")]
    [InlineData(2, "6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803")]
    [InlineData(63, "c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd")]
    [InlineData(64, "8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4")]
    [InlineData(65, "21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8")]
    [InlineData(128, "0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a")]
    [InlineData(192, "5950d39a23e1545f301270aa1a12f2e6c453776e4d6355de425cc153f9818867")]
    [InlineData(255, "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd")]
    public void Kat_Keyed(int length, string expected)
    {
        KeyedHash(Sequence(32), Sequence(length), 32).Should().Be(expected);
    }

    [Theory]
    [InlineData("", "9536f9b267655743dee97b8a670f9f53")]
    [InlineData("abc", "61ba5f165c194692e09d12520cc4c74a")]
    public void Keyed_With128BitOutput(string message, string expected)
    {
        KeyedHash(Sequence(32), System.Text.Encoding.ASCII.GetBytes(message), 16).Should().Be(expected);
    }
}
