using System.Buffers.Binary;
using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

[Trait("Category", "Unit")]
public sealed class Tai64NTests
{
    private static readonly DateTimeOffset Start = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    // 2^24 ns in 100 ns ticks, rounded up.
    private const long WindowTicks = (1L << 24) / 100 + 1;

    private static byte[] Encode(DateTimeOffset time)
    {
        var buffer = new byte[Tai64N.Size];
        Tai64N.Write(time, buffer);
        return buffer;
    }

    [Fact]
    public void Nanoseconds_AreWhitenedTo2Pow24()
    {
        var random = new Random(1);
        for (int i = 0; i < 1000; i++)
        {
            byte[] encoded = Encode(Start.AddTicks(random.NextInt64(0, TimeSpan.TicksPerDay)));
            uint nanoseconds = BinaryPrimitives.ReadUInt32BigEndian(encoded.AsSpan(8));
            (nanoseconds & Tai64N.WhitenerMask).Should().Be(0u);
            nanoseconds.Should().BeLessThan(1_000_000_000u);
        }
    }

    [Fact]
    public void InstantsInOneWhiteningWindow_EncodeEqually_AndAreNotAfterEachOther()
    {
        // Start is on a whole second, so the window [0, 2^24 ns) begins exactly there.
        byte[] first = Encode(Start);
        byte[] later = Encode(Start.AddTicks(WindowTicks - 2));

        later.Should().Equal(first);
        Tai64N.IsAfter(later, first).Should().BeFalse();
        Tai64N.IsAfter(first, later).Should().BeFalse();
    }

    [Fact]
    public void NextWhiteningWindow_IsAfter()
    {
        byte[] first = Encode(Start);
        byte[] next = Encode(Start.AddTicks(WindowTicks));

        Tai64N.IsAfter(next, first).Should().BeTrue();
        Tai64N.IsAfter(first, next).Should().BeFalse();
    }

    [Fact]
    public void InstantsSpacedByTheHandshakeRateLimit_AreStrictlyOrdered()
    {
        // Initiations from one peer are at least 20 ms apart; 20 ms > 2^24 ns, so each is after the last,
        // including across second boundaries.
        byte[] previous = Encode(Start.AddMilliseconds(-3));
        for (int i = 1; i <= 200; i++)
        {
            byte[] current = Encode(Start.AddMilliseconds(-3 + 20 * i));
            Tai64N.IsAfter(current, previous).Should().BeTrue($"step {i}");
            Tai64N.IsAfter(previous, current).Should().BeFalse($"step {i}");
            previous = current;
        }
    }

    [Fact]
    public void Seconds_OutrankNanoseconds()
    {
        byte[] endOfSecond = Encode(Start.AddTicks(TimeSpan.TicksPerSecond - 1));
        byte[] nextSecond = Encode(Start.AddSeconds(1));

        Tai64N.IsAfter(nextSecond, endOfSecond).Should().BeTrue();
        Tai64N.IsAfter(endOfSecond, nextSecond).Should().BeFalse();
    }

    [Fact]
    public void IsAfter_ComparesBigEndianBytewise()
    {
        byte[] low = Convert.FromHexString("400000000000000a" + "ff000000");
        byte[] high = Convert.FromHexString("400000000000000b" + "00000000");
        Tai64N.IsAfter(high, low).Should().BeTrue();
        Tai64N.IsAfter(low, high).Should().BeFalse();
        Tai64N.IsAfter(high, high).Should().BeFalse();

        // A zeroed "previous" (no initiation seen yet) is older than any real timestamp.
        Tai64N.IsAfter(Encode(DateTimeOffset.UnixEpoch), new byte[Tai64N.Size]).Should().BeTrue();
    }

    [Fact]
    public void WrongSizes_Throw()
    {
        FluentActions.Invoking(() => Tai64N.Write(Start, new byte[11])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Tai64N.Write(Start, new byte[13])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Tai64N.IsAfter(new byte[12], new byte[8])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Tai64N.IsAfter(new byte[16], new byte[12])).Should().Throw<ArgumentException>();
    }
}
