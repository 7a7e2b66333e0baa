using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>UDP datagram validation, receive queue limits and the allocation-free receive path, single-threaded.</summary>
[Trait("Category", "Unit")]
public sealed class UdpReceiveQueueTests : IDisposable
{
    private readonly StackTestBed _bed = new();
    private readonly UdpSocket _socket4;
    private readonly UdpSocket _socket6;

    public UdpReceiveQueueTests()
    {
        _socket4 = _bed.Stack.BindUdp(new IPEndPoint(LocalV4, 7000));
        _socket6 = _bed.Stack.BindUdp(new IPEndPoint(LocalV6, 7000));
    }

    public void Dispose() => _bed.Dispose();

    private static byte[] Udp(bool v6, int length = 4, ushort destinationPort = 7000) =>
        TestPackets.UdpPacket(Remote(v6), Local(v6), 5000, destinationPort, new byte[length]);

    private static int UdpOffset(bool v6) => v6 ? 40 : 20;

    /// <summary>The result of an operation that must have completed synchronously.</summary>
    private static T Now<T>(ValueTask<T> operation)
    {
        if (!operation.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("The operation should have completed synchronously."); // no assertion library: it allocates
        }
        return operation.Result;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_corrupted_datagram_fails_its_checksum(bool v6)
    {
        var packet = Udp(v6);
        packet[^1] ^= 0x40;
        _bed.Inject(packet);
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.UdpMalformed] = 1 });
        _bed.Link.Count.Should().Be(0, "no port unreachable for a corrupted datagram");
    }

    [Fact]
    public void A_zero_checksum_means_none_over_IPv4()
    {
        var packet = Udp(false);
        packet[26] = packet[27] = 0;
        _bed.Inject(packet);
        _bed.Drops.Should().BeEmpty();
        _bed.Counters.UdpDatagramsReceived.Should().Be(1);
    }

    [Fact]
    public void A_zero_checksum_is_invalid_over_IPv6()
    {
        var packet = Udp(true);
        packet[46] = packet[47] = 0;
        _bed.Inject(packet);
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.UdpMalformed] = 1 });
    }

    [Theory]
    [InlineData(false, 7)]
    [InlineData(false, 13)]
    [InlineData(true, 0)]
    [InlineData(true, 13)]
    public void A_length_field_that_lies_is_malformed(bool v6, int length)
    {
        var packet = Udp(v6);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(UdpOffset(v6) + 4), (ushort)length);
        _bed.Inject(packet);
        _bed.Counters[StackDropReason.UdpMalformed].Should().Be(1);
    }

    [Fact]
    public void A_length_field_shorter_than_the_packet_trims_the_datagram()
    {
        var data = new byte[] { 1, 2, 3, 4, 5, 6 };
        var udp = TestPackets.UdpSegment(RemoteV4, LocalV4, 5000, 7000, data);
        _bed.Inject(TestPackets.Ipv4(RemoteV4, LocalV4, TestPackets.Udp, [.. udp, 0xEE, 0xEE]));
        var buffer = new byte[10];
        var result = _socket4.ReceiveFromAsync(buffer).AsTask();
        result.IsCompletedSuccessfully.Should().BeTrue();
        buffer[..6].Should().Equal(data);
    }

    [Theory]
    [InlineData(false, 7)]
    [InlineData(true, 7)]
    public void A_datagram_shorter_than_a_header_is_malformed(bool v6, int length)
    {
        var packet = TestPackets.Ip(Remote(v6), Local(v6), TestPackets.Udp, new byte[length]);
        _bed.Inject(packet);
        _bed.Counters[StackDropReason.UdpMalformed].Should().Be(1);
    }

    [Fact]
    public void Port_zero_is_malformed()
    {
        _bed.Inject(Udp(false, destinationPort: 0));
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.UdpMalformed] = 1 });
    }

    [Fact]
    public void A_full_queue_drops_and_counts()
    {
        _socket4.ReceiveQueueCapacity = 2;
        for (int i = 0; i < 5; i++)
        {
            _bed.Inject(Udp(false));
        }
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.UdpReceiveQueueFull] = 3 });
        _bed.Counters.UdpDatagramsReceived.Should().Be(2);
        _bed.Link.Count.Should().Be(0, "a full queue is not a closed port");
    }

    [Fact]
    public void The_receive_buffer_size_bounds_queued_bytes()
    {
        _socket6.ReceiveBufferSize = 3000; // each 1000-byte datagram holds a 1024-byte buffer and bookkeeping
        for (int i = 0; i < 4; i++)
        {
            _bed.Inject(Udp(true, 1000));
        }
        _bed.Counters.UdpDatagramsReceived.Should().Be(2);
        _bed.Counters[StackDropReason.UdpReceiveQueueFull].Should().Be(2);
        _bed.Stack.MemoryInUse.Should().BeInRange(2048, 3000, "queued datagrams are reserved against the stack budget");

        var buffer = new byte[2000];
        _socket6.ReceiveFromAsync(buffer).AsTask().IsCompletedSuccessfully.Should().BeTrue();
        _socket6.ReceiveFromAsync(buffer).AsTask().IsCompletedSuccessfully.Should().BeTrue();
        _bed.Stack.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void A_full_stack_budget_drops_datagrams()
    {
        var budget = _bed.Stack.Context.Budget;
        budget.TryReserve(budget.Limit - 100).Should().BeTrue();
        _bed.Inject(Udp(false, 200));
        _bed.Counters[StackDropReason.UdpReceiveQueueFull].Should().Be(1);
        budget.Release(budget.Limit - 100);
    }

    [Fact]
    public void Disposing_a_socket_returns_its_queued_memory()
    {
        _bed.Inject(Udp(false, 500));
        _bed.Stack.MemoryInUse.Should().BeGreaterThan(500);
        _socket4.Dispose();
        _bed.Stack.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void The_sender_endpoint_is_reused_until_it_changes_or_is_modified()
    {
        var buffer = new byte[10];
        _bed.Inject(Udp(false));
        _bed.Inject(Udp(false));
        var first = (IPEndPoint)Now(_socket4.ReceiveFromAsync(buffer)).RemoteEndPoint;
        var second = (IPEndPoint)Now(_socket4.ReceiveFromAsync(buffer)).RemoteEndPoint;
        second.Should().BeSameAs(first);

        first.Port = 1;
        _bed.Inject(Udp(false));
        var third = (IPEndPoint)Now(_socket4.ReceiveFromAsync(buffer)).RemoteEndPoint;
        third.Should().NotBeSameAs(first);
        third.Should().Be(new IPEndPoint(RemoteV4, 5000));
    }
}
