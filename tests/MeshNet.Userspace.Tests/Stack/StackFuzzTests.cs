using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using Xunit.Abstractions;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>
/// One million mutated packets (bit flips, truncation, length-field lies, fragment-field
/// changes, garbage) derived from valid IPv4/IPv6 ICMP, UDP and TCP packets and fragments: no
/// exception may escape, no internal error may be counted, memory stays bounded, and every
/// packet is accounted for by the counters. Deterministic (seeded); independent of what TCP
/// does with the segments it receives.
/// </summary>
[Trait("Category", "Unit")]
public sealed class StackFuzzTests(ITestOutputHelper output)
{
    private const int PacketCount = 1_000_000;

    /// <summary>Drops counted by the IP layer itself (before a datagram reaches a transport).</summary>
    private static readonly StackDropReason[] IpLayerReasons =
    [
        StackDropReason.IpTruncated, StackDropReason.IpBadVersion, StackDropReason.IpBadHeaderLength, StackDropReason.IpBadChecksum,
        StackDropReason.IpNotForUs, StackDropReason.IpBadSource, StackDropReason.IpBadExtensionHeader, StackDropReason.IpUnknownProtocol,
        StackDropReason.FragmentMalformed, StackDropReason.FragmentBudgetExceeded, StackDropReason.FragmentTimeout,
        StackDropReason.FragmentOverlap, StackDropReason.FragmentDuplicate, StackDropReason.StackDisposed,
    ];

    [Fact]
    public void A_million_mutated_packets_are_all_accounted_for()
    {
        using var bed = new StackTestBed(options =>
        {
            options.MaxReassemblyBytes = 256 << 10;
            options.IcmpErrorsPerSecond = 1000;
        });
        bed.Link.KeepPackets = false;
        using var udp4 = bed.Stack.BindUdp(new IPEndPoint(LocalV4, 7000));
        using var udp6 = bed.Stack.BindUdp(new IPEndPoint(LocalV6, 7000));
        udp4.ReceiveQueueCapacity = udp6.ReceiveQueueCapacity = 64;

        var templates = Templates();
        var random = new Random(20261126);
        var buffer = new byte[70_000];
        var receiveBuffer = new byte[70_000];
        var stopwatch = Stopwatch.StartNew();

        for (int i = 0; i < PacketCount; i++)
        {
            int length = Mutate(templates[random.Next(templates.Count)], buffer, random);
            bed.Stack.WritePacket(buffer.AsSpan(0, length));

            if (i % 1000 == 999)
            {
                bed.Time.Advance(TimeSpan.FromMilliseconds(100)); // timers run: reassembly expiry, ICMP tokens
                Drain(udp4, receiveBuffer);
                Drain(udp6, receiveBuffer);
                bed.Stack.Reassembler.BytesHeld.Should().BeLessThanOrEqualTo(256 << 10);
                bed.Stack.Reassembler.DatagramCount.Should().BeLessThanOrEqualTo(FragmentReassembler.MaxDatagrams);
            }
        }
        bed.Time.Advance(TimeSpan.FromSeconds(31)); // every incomplete datagram expires
        stopwatch.Stop();

        var counters = bed.Counters;
        output.WriteLine($"{PacketCount} packets in {stopwatch.Elapsed.TotalSeconds:F1} s: {counters}");
        output.WriteLine($"echo replies {counters.IcmpEchoRepliesSent}, ICMP errors sent {counters.IcmpErrorsSent}, received {counters.IcmpErrorsReceived}, UDP received {counters.UdpDatagramsReceived}");
        counters[StackDropReason.StackInternalError].Should().Be(0, counters.ToString());
        counters.PacketsReceived.Should().Be(PacketCount);
        bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        long ipDrops = IpLayerReasons.Sum(reason => counters[reason]);
        (counters.PacketsReceived + counters.DatagramsReassembled).Should().Be(
            ipDrops + counters.PacketsDelivered + counters.FragmentsReassembled,
            $"every packet is dropped at the IP layer, delivered, or consumed by a reassembled datagram ({counters})");

        // The mutations must exercise a wide range of paths, or the test proves little.
        counters.PacketsDelivered.Should().BeGreaterThan(PacketCount / 20);
        counters.DatagramsReassembled.Should().BeGreaterThan(100);
        foreach (var reason in new[]
        {
            StackDropReason.IpTruncated, StackDropReason.IpBadVersion, StackDropReason.IpBadHeaderLength, StackDropReason.IpBadChecksum,
            StackDropReason.IpNotForUs, StackDropReason.IpBadSource, StackDropReason.IpBadExtensionHeader, StackDropReason.IpUnknownProtocol,
            StackDropReason.FragmentMalformed, StackDropReason.FragmentTimeout, StackDropReason.FragmentOverlap,
            StackDropReason.FragmentDuplicate, StackDropReason.IcmpMalformed, StackDropReason.UdpMalformed, StackDropReason.UdpNoListener,
        })
        {
            counters[reason].Should().BeGreaterThan(0, $"{reason} should be exercised ({counters})");
        }
        counters.IcmpEchoRepliesSent.Should().BeGreaterThan(0);
        counters.IcmpErrorsReceived.Should().BeGreaterThan(0);
        stopwatch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(40));

        udp4.Dispose();
        udp6.Dispose();
        bed.Stack.MemoryInUse.Should().Be(0, "every buffer was returned to the budget");
    }

    private static void Drain(UdpSocket socket, byte[] buffer)
    {
        while (true)
        {
            var receive = socket.ReceiveFromAsync(buffer);
            if (!receive.IsCompleted)
            {
                throw new InvalidOperationException("Draining must not leave a receive pending.");
            }
            if (receive.IsFaulted)
            {
                _ = receive.AsTask().Exception; // a MessageSize error cannot happen with this buffer
                continue;
            }
            break;
        }
    }

    private static int Mutate(byte[] template, byte[] buffer, Random random)
    {
        template.CopyTo(buffer, 0);
        int length = template.Length;
        bool v4 = (template[0] >> 4) == 4;
        switch (random.Next(10))
        {
            case 0: // untouched
                break;
            case 1: // flip a few bits
            case 2:
                for (int flips = random.Next(1, 4); flips > 0; flips--)
                {
                    int bit = random.Next(Math.Min(length, 80) * 8);
                    buffer[bit / 8] ^= (byte)(1 << (bit % 8));
                }
                break;
            case 3: // flip bits anywhere
                buffer[random.Next(length)] ^= (byte)(1 << random.Next(8));
                break;
            case 4: // truncate
                length = random.Next(length);
                break;
            case 5: // lie in a length field
                LieAboutLength(buffer, length, v4, random);
                break;
            case 6: // change fragment fields
                ChangeFragmentFields(buffer, length, v4, random);
                break;
            case 7: // append junk
                int extra = random.Next(1, 64);
                random.NextBytes(buffer.AsSpan(length, extra));
                length += extra;
                break;
            case 8: // overwrite a byte with a random value
                buffer[random.Next(Math.Min(length, 64))] = (byte)random.Next(256);
                break;
            default: // garbage, sometimes with a plausible first byte
                length = random.Next(0, 200);
                random.NextBytes(buffer.AsSpan(0, length));
                if (length > 0 && random.Next(2) == 0)
                {
                    buffer[0] = random.Next(2) == 0 ? (byte)0x45 : (byte)0x60;
                }
                break;
        }
        // Most IPv4 mutations would only test the header checksum: repair it half of the time.
        if (v4 && length >= 20 && (buffer[0] >> 4) == 4 && random.Next(2) == 0)
        {
            int headerLength = (buffer[0] & 0x0F) * 4;
            if (headerLength >= 20 && headerLength <= length)
            {
                TestPackets.FixIpv4Checksum(buffer.AsSpan(0, length));
            }
        }
        return length;
    }

    private static void LieAboutLength(byte[] buffer, int length, bool v4, Random random)
    {
        ushort lie = (ushort)(random.Next(3) switch
        {
            0 => random.Next(65536),
            1 => length + random.Next(-8, 9),
            _ => random.Next(64),
        });
        int ip = v4 ? 20 : 40;
        switch (random.Next(4))
        {
            case 0 when v4:
                BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(2), lie);
                break;
            case 0:
                BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(4), lie);
                break;
            case 1 when v4:
                buffer[0] = (byte)(0x40 | random.Next(16)); // header length
                break;
            case 1 when length > 41:
                buffer[41] = (byte)random.Next(256); // an extension header's length, if there is one
                break;
            case 2 when length >= ip + 6:
                BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(ip + 4), lie); // UDP length (or whatever is there)
                break;
            default:
                if (length >= ip + 14)
                {
                    buffer[ip + 12] = (byte)random.Next(256); // TCP data offset, or data
                }
                break;
        }
    }

    private static void ChangeFragmentFields(byte[] buffer, int length, bool v4, Random random)
    {
        if (v4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(6), (ushort)random.Next(65536));
            if (random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(4), (ushort)random.Next(4)); // collide identifications
            }
        }
        else if (length >= 48 && buffer[6] == 44)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(42), (ushort)random.Next(65536));
            if (random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(44), (uint)random.Next(4));
            }
        }
        else if (length >= 40)
        {
            buffer[6] = (byte)random.Next(256); // next header
        }
    }

    /// <summary>Valid packets of every kind the stack handles, both families.</summary>
    private static List<byte[]> Templates()
    {
        var templates = new List<byte[]>();
        var random = new Random(7);
        byte[] Bytes(int length)
        {
            var data = new byte[length];
            random.NextBytes(data);
            return data;
        }

        foreach (bool v6 in new[] { false, true })
        {
            var remote = Remote(v6);
            var local = Local(v6);
            byte icmp = v6 ? TestPackets.IcmpV6 : TestPackets.Icmp;

            templates.Add(TestPackets.UdpPacket(remote, local, 5000, 7000, Bytes(16)));
            templates.Add(TestPackets.UdpPacket(remote, local, 5000, 7000, Bytes(600)));
            templates.Add(TestPackets.UdpPacket(remote, local, 5000, 9999, Bytes(32)));
            templates.Add(TestPackets.EchoRequest(remote, local, 1, 2, Bytes(56)));
            templates.Add(TestPackets.Ip(remote, local, TestPackets.Tcp, TcpSyn()));
            templates.Add(TestPackets.Ip(remote, local, TestPackets.Tcp, [.. TcpSyn(), .. Bytes(100)]));

            // ICMP errors quoting datagrams and segments the stack sent.
            var ourUdp = TestPackets.UdpPacket(local, remote, 7000, 5000, Bytes(20));
            var ourTcp = TestPackets.Ip(local, remote, TestPackets.Tcp, TcpSyn());
            templates.Add(TestPackets.Ip(remote, local, icmp, TestPackets.IcmpMessage(remote, local, v6 ? (byte)1 : (byte)3, v6 ? (byte)4 : (byte)3, 0, ourUdp)));
            templates.Add(TestPackets.Ip(remote, local, icmp, TestPackets.IcmpMessage(remote, local, v6 ? (byte)2 : (byte)3, v6 ? (byte)0 : (byte)4, 1280, ourTcp)));
            templates.Add(TestPackets.Ip(remote, local, icmp, TestPackets.IcmpMessage(remote, local, v6 ? (byte)3 : (byte)11, 0, 0, ourUdp)));

            // Fragments of a 3000-byte UDP datagram and of a 2000-byte echo request, several identifications.
            for (uint id = 1; id <= 3; id++)
            {
                var datagram = TestPackets.UdpSegment(remote, local, 5000, 7000, Bytes(3000));
                templates.AddRange(TestPackets.Fragments(remote, local, TestPackets.Udp, datagram, 1232, id));
                var echo = TestPackets.IcmpMessage(remote, local, v6 ? (byte)128 : (byte)8, 0, id, Bytes(2000));
                templates.AddRange(TestPackets.Fragments(remote, local, icmp, echo, 1024, id + 100));
            }
        }

        // IPv6 extension headers and IPv4 options.
        var udp6 = TestPackets.UdpSegment(RemoteV6, LocalV6, 5000, 7000, Bytes(40));
        templates.Add(TestPackets.Ipv6(RemoteV6, LocalV6, 0, TestPackets.Concat(
            TestPackets.ExtensionHeader(60, [1, 4, 0, 0, 0, 0]), TestPackets.ExtensionHeader(43, [0, 0, 0, 0, 0, 0]),
            TestPackets.ExtensionHeader(TestPackets.Udp, [0x1E, 2, 0, 0, 0, 0]), udp6)));
        templates.Add(TestPackets.Ipv4(RemoteV4, LocalV4, TestPackets.Udp,
            TestPackets.UdpSegment(RemoteV4, LocalV4, 5000, 7000, Bytes(40)), options: [1, 1, 1, 0, 7, 3, 4, 0]));
        return templates;
    }

    private static byte[] TcpSyn()
    {
        var tcp = new byte[24];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), 80);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), 12345);
        tcp[12] = 6 << 4; // data offset: 24 bytes
        tcp[13] = 0x02;   // SYN
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 65535);
        tcp[20] = 2;      // MSS option
        tcp[21] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(22), 1380);
        return tcp; // the checksum is left for TCP to reject or not: the IP layer does not care
    }
}
