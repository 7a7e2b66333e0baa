using MeshNet.Userspace.Crypto;

namespace MeshNet.Userspace.Tests.Crypto;

/// <summary>TAI64N encodings of known instants (base 2^62 + 10, big-endian, nanoseconds whitened to 2^24 ns).</summary>
[Trait("Category", "Vectors")]
public sealed class Tai64NVectorTests
{
    private static string Encode(DateTimeOffset time)
    {
        Span<byte> buffer = stackalloc byte[Tai64N.Size];
        Tai64N.Write(time, buffer);
        return Convert.ToHexStringLower(buffer);
    }

    [Fact]
    public void UnixEpoch()
    {
        Encode(DateTimeOffset.UnixEpoch).Should().Be("400000000000000a" + "00000000");
    }

    [Fact]
    public void NewYear2020_WithFraction()
    {
        // 1577836800 s = 0x5e0be100; 123456700 ns = 0x075bcd15 -> whitened 0x07000000.
        var time = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(1_234_567);
        Encode(time).Should().Be("400000005e0be10a" + "07000000");
    }

    [Fact]
    public void LastTickOfASecond()
    {
        // 999999900 ns = 0x3b9ac99c -> whitened 0x3b000000.
        var time = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(TimeSpan.TicksPerSecond - 1);
        Encode(time).Should().Be("400000005e0be10a" + "3b000000");
    }

    [Fact]
    public void BeyondThe32BitUnixRollover()
    {
        Encode(new DateTimeOffset(2038, 1, 19, 3, 14, 8, TimeSpan.Zero)).Should().Be("400000008000000a" + "00000000");
    }

    [Fact]
    public void BeforeTheEpoch_SecondsFloor()
    {
        // 1969-12-31T23:59:59.5Z: Unix -1 s plus 500000000 ns (0x1dcd6500 -> 0x1d000000).
        var time = DateTimeOffset.UnixEpoch.AddMilliseconds(-500);
        Encode(time).Should().Be("4000000000000009" + "1d000000");
    }

    [Fact]
    public void OffsetDoesNotMatter_OnlyTheInstant()
    {
        var utc = new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.Zero);
        Encode(utc.ToOffset(TimeSpan.FromHours(5.5))).Should().Be(Encode(utc));
    }
}
