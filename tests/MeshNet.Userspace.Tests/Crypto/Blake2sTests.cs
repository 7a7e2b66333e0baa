using System.Runtime.InteropServices;
using MeshNet.TestSupport;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

[Trait("Category", "Unit")]
public sealed class Blake2sTests
{
    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static byte[] OneShot(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, int outputSize)
    {
        var output = new byte[outputSize];
        Blake2s.KeyedHash(key, data, output);
        return output;
    }

    public static TheoryData<int> ChunkSizes => new() { 1, 2, 3, 7, 13, 31, 63, 64, 65, 100, 127, 128, 129 };

    [Theory]
    [MemberData(nameof(ChunkSizes))]
    public void IncrementalUpdates_EqualOneShot(int chunkSize)
    {
        byte[] data = RandomBytes(1000, chunkSize);
        foreach (int keyLength in new[] { 0, 1, 16, 32 })
        {
            byte[] key = RandomBytes(keyLength, 1000 + keyLength);
            foreach (int outputSize in new[] { 1, 16, 17, 32 })
            {
                // Every prefix length, so each buffer fill level meets each block boundary.
                foreach (int length in new[] { 0, 1, 63, 64, 65, 128, 129, 191, 192, 193, 1000 })
                {
                    var state = new Blake2s(outputSize, key);
                    ReadOnlySpan<byte> rest = data.AsSpan(0, length);
                    while (!rest.IsEmpty)
                    {
                        int take = Math.Min(chunkSize, rest.Length);
                        state.Update(rest[..take]);
                        state.Update([]);
                        rest = rest[take..];
                    }
                    var incremental = new byte[outputSize];
                    state.Finish(incremental);

                    incremental.Should().Equal(
                        OneShot(key, data.AsSpan(0, length), outputSize),
                        $"chunk {chunkSize}, key {keyLength}, output {outputSize}, length {length}");
                }
            }
        }
    }

    [Fact]
    public void IrregularChunkSequence_EqualsOneShot()
    {
        byte[] data = RandomBytes(4096, 7);
        var random = new Random(42);
        var state = new Blake2s(32);
        int offset = 0;
        while (offset < data.Length)
        {
            int take = Math.Min(random.Next(0, 200), data.Length - offset);
            state.Update(data.AsSpan(offset, take));
            offset += take;
        }
        var incremental = new byte[32];
        state.Finish(incremental);

        incremental.Should().Equal(OneShot([], data, 32));
    }

    [Fact]
    public void DifferentOutputSizes_AreDifferentFunctions_NotTruncations()
    {
        // The digest length is part of the parameter block, so BLAKE2s-128 is not a prefix of BLAKE2s-256.
        OneShot([], "abc"u8, 16).Should().NotEqual(OneShot([], "abc"u8, 32).AsSpan(0, 16).ToArray());
    }

    [Fact]
    public void EmptyKey_IsUnkeyedHash_ButZeroKeyIsNot()
    {
        var unkeyed = new byte[32];
        Blake2s.Hash("abc"u8, unkeyed);
        OneShot([], "abc"u8, 32).Should().Equal(unkeyed);
        OneShot(new byte[1], "abc"u8, 32).Should().NotEqual(unkeyed);
    }

    [Fact]
    public void Finish_ZeroesTheWholeState()
    {
        var state = new Blake2s(32, RandomBytes(32, 1));
        state.Update(RandomBytes(100, 2));
        Span<byte> stateBytes = MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref state, 1));
        stateBytes.ContainsAnyExcept((byte)0).Should().BeTrue();

        state.Finish(new byte[32]);

        stateBytes.ContainsAnyExcept((byte)0).Should().BeFalse();
    }

    [Fact]
    public void FinishedOrDefaultInstance_Throws()
    {
        var state = new Blake2s(32);
        state.Finish(new byte[32]);
        var spent = state;
        FluentActions.Invoking(() => spent.Update("x"u8)).Should().Throw<InvalidOperationException>();
        FluentActions.Invoking(() => spent.Finish(new byte[32])).Should().Throw<InvalidOperationException>();

        var never = default(Blake2s);
        FluentActions.Invoking(() => never.Update("x"u8)).Should().Throw<InvalidOperationException>();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(33)]
    public void BadOutputSize_Throws(int outputSize)
    {
        FluentActions.Invoking(() => new Blake2s(outputSize)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Blake2s.Hash("abc"u8, new byte[Math.Max(outputSize, 0)])).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void KeyLongerThan32Bytes_Throws()
    {
        FluentActions.Invoking(() => new Blake2s(32, new byte[33])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Blake2s.KeyedHash(new byte[33], "abc"u8, new byte[32])).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void FinishWithWrongOutputLength_Throws_AndLeavesStateUsable()
    {
        var state = new Blake2s(16);
        state.Update("abc"u8);
        bool threw = false;
        try
        {
            state.Finish(new byte[32]);
        }
        catch (ArgumentException)
        {
            threw = true;
        }
        threw.Should().BeTrue();

        var output = new byte[16];
        state.Finish(output);
        Convert.ToHexStringLower(output).Should().Be("aa4938119b1dc7b87cbad0ffd200d0ae");
    }

    [Fact]
    public void OutputMayAliasKeyAndData()
    {
        byte[] buffer = RandomBytes(64, 3);
        byte[] expected = OneShot(buffer.AsSpan(0, 32), buffer, 32);

        Blake2s.KeyedHash(buffer.AsSpan(0, 32), buffer, buffer.AsSpan(0, 32));

        buffer.AsSpan(0, 32).ToArray().Should().Equal(expected);
    }

    [Fact]
    public void Hashing_DoesNotAllocate()
    {
        byte[] key = RandomBytes(32, 4);
        byte[] data = RandomBytes(300, 5);
        byte[] output = new byte[32];
        Blake2s.KeyedHash(key, data, output); // warm up

        AllocationMeter.LeastOf(3, () =>
        {
            for (int i = 0; i < 100; i++)
            {
                Blake2s.KeyedHash(key, data, output);
                Blake2s.Hash(data, output.AsSpan(0, 16));
            }
        }).Should().Be(0);
    }
}
