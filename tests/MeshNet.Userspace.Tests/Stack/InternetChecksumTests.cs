using System.Buffers.Binary;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Tests.Stack;

[Trait("Category", "Unit")]
public sealed class InternetChecksumTests
{
    private static ushort Reference(ReadOnlySpan<byte> data, ulong initial = 0)
    {
        ulong sum = initial;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }
        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    [Fact]
    public void Rfc1071ExampleSums()
    {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (checksum 220d).
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        InternetChecksum.Compute(data).Should().Be(0x220d);
    }

    [Fact]
    public void KnownIPv4HeaderVerifies()
    {
        byte[] header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        ushort checksum = InternetChecksum.Compute(header);
        checksum.Should().Be(0xb861);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(10), checksum);
        InternetChecksum.Compute(header).Should().Be(0);
    }

    [Fact]
    public void MatchesAWordByWordReferenceForEveryLengthAndAlignment()
    {
        var random = new Random(7);
        var buffer = new byte[3000];
        random.NextBytes(buffer);
        for (int offset = 0; offset < 8; offset++)
        {
            for (int length = 0; length < 300; length++)
            {
                var data = buffer.AsSpan(offset, length);
                InternetChecksum.Compute(data).Should().Be(Reference(data), $"offset {offset} length {length}");
            }
        }
        var all = buffer.AsSpan(1, 2999);
        InternetChecksum.Finish(InternetChecksum.Sum(all, 0x1234)).Should().Be(Reference(all, 0x1234));
        var ones = Enumerable.Repeat((byte)0xFF, 70_000).ToArray();
        InternetChecksum.Compute(ones).Should().Be(Reference(ones));
    }

    [Fact]
    public void TransportChecksumOverPseudoHeaderVerifiesToZero()
    {
        var source = NetAddress.Parse("fd00::1");
        var destination = NetAddress.Parse("fd00::2");
        var segment = new byte[57];
        new Random(3).NextBytes(segment);
        segment[6] = segment[7] = 0;
        ushort checksum = InternetChecksum.Transport(source, destination, 17, segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(6), checksum);
        InternetChecksum.Transport(source, destination, 17, segment).Should().Be(0);

        var v4Source = NetAddress.Parse("10.0.0.1");
        var v4Destination = NetAddress.Parse("10.0.0.2");
        segment[6] = segment[7] = 0;
        var pseudo = new byte[12];
        v4Source.WriteBytes(pseudo);
        v4Destination.WriteBytes(pseudo.AsSpan(4));
        pseudo[9] = 17;
        BinaryPrimitives.WriteUInt16BigEndian(pseudo.AsSpan(10), (ushort)segment.Length);
        InternetChecksum.Transport(v4Source, v4Destination, 17, segment).Should().Be(Reference([.. pseudo, .. segment]));
    }
}
