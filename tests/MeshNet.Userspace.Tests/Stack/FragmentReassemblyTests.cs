using System.Buffers.Binary;
using System.Net;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.Stack.Ip;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Fragment reassembly, both families: order, duplicates, overlaps, limits, timeouts.</summary>
[Trait("Category", "Unit")]
public sealed class FragmentReassemblyTests : IDisposable
{
    private readonly StackTestBed _bed;

    public FragmentReassemblyTests() => _bed = new StackTestBed();

    public void Dispose() => _bed.Dispose();

    private static byte[] Data(int length, int seed = 1)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>A UDP datagram to port 7000, as the transport payload to fragment.</summary>
    private static byte[] UdpPayload(bool v6, byte[] data) => TestPackets.UdpSegment(Remote(v6), Local(v6), 5000, 7000, data);

    private static byte[] Fragment(bool v6, byte[] payload, int offset, int length, bool more, uint id = 42) =>
        TestPackets.Fragment(Remote(v6), Local(v6), TestPackets.Udp, payload, offset, length, more, id);

    private UdpSocket Bind(bool v6) => _bed.Stack.BindUdp(new IPEndPoint(Local(v6), 7000));

    private static byte[] ReceiveNow(UdpSocket socket)
    {
        var buffer = new byte[70000];
        var task = socket.ReceiveFromAsync(buffer).AsTask();
        task.IsCompletedSuccessfully.Should().BeTrue("a reassembled datagram should be queued");
        return buffer[..task.Result.ReceivedBytes];
    }

    private void NothingDelivered(UdpSocket socket)
    {
        _bed.Counters.PacketsDelivered.Should().Be(0);
        using var cancel = new CancellationTokenSource();
        var pending = socket.ReceiveFromAsync(new byte[10], cancel.Token);
        pending.IsCompleted.Should().BeFalse();
        cancel.Cancel();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fragments_in_order_are_reassembled(bool v6)
    {
        using var socket = Bind(v6);
        var data = Data(3000);
        _bed.InjectAll(TestPackets.Fragments(Remote(v6), Local(v6), TestPackets.Udp, UdpPayload(v6, data), 1232, 42));

        ReceiveNow(socket).Should().Equal(data);
        _bed.Drops.Should().BeEmpty();
        _bed.Counters.DatagramsReassembled.Should().Be(1);
        _bed.Counters.FragmentsReassembled.Should().Be(3);
        _bed.Counters.PacketsDelivered.Should().Be(1);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        _bed.Stack.Reassembler.BytesHeld.Should().Be(0);
        _bed.Stack.MemoryInUse.Should().Be(0, "everything was released once the datagram was consumed");
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 2)]
    [InlineData(true, 3)]
    [InlineData(true, 4)]
    public void Fragments_in_any_order_are_reassembled(bool v6, int seed)
    {
        using var socket = Bind(v6);
        var data = Data(5000, seed);
        var fragments = TestPackets.Fragments(Remote(v6), Local(v6), TestPackets.Udp, UdpPayload(v6, data), 512, 42);
        var random = new Random(seed);
        _bed.InjectAll(fragments.OrderBy(_ => random.Next()));

        ReceiveNow(socket).Should().Equal(data);
        _bed.Drops.Should().BeEmpty();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_duplicate_fragment_is_ignored_and_the_datagram_kept(bool v6)
    {
        using var socket = Bind(v6);
        var payload = UdpPayload(v6, Data(100));
        _bed.Inject(Fragment(v6, payload, 0, 48, more: true));
        _bed.Inject(Fragment(v6, payload, 0, 48, more: true));
        _bed.Inject(Fragment(v6, payload, 48, payload.Length - 48, more: false));
        _bed.Inject(Fragment(v6, payload, 48, payload.Length - 48, more: false)); // a new datagram with the same id starts

        ReceiveNow(socket).Should().Equal(payload[8..]);
        _bed.Counters[StackDropReason.FragmentDuplicate].Should().Be(1);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(1, "the late duplicate waits as the start of another datagram");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_fragment_inside_data_already_held_is_a_duplicate(bool v6)
    {
        using var socket = Bind(v6);
        var payload = UdpPayload(v6, Data(200));
        _bed.Inject(Fragment(v6, payload, 0, 64, more: true));
        _bed.Inject(Fragment(v6, payload, 64, 64, more: true));
        _bed.Inject(Fragment(v6, payload, 32, 64, more: true)); // spans two held fragments exactly
        _bed.Inject(Fragment(v6, payload, 8, 16, more: true));  // inside the first
        _bed.Inject(Fragment(v6, payload, 128, payload.Length - 128, more: false));

        ReceiveNow(socket).Should().Equal(payload[8..]);
        _bed.Counters[StackDropReason.FragmentDuplicate].Should().Be(2);
        _bed.Drops.Should().HaveCount(1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_overlapping_fragment_drops_the_whole_datagram(bool v6)
    {
        using var socket = Bind(v6);
        var payload = UdpPayload(v6, Data(200));
        _bed.Inject(Fragment(v6, payload, 0, 64, more: true));
        _bed.Inject(Fragment(v6, payload, 128, payload.Length - 128, more: false));
        _bed.Inject(Fragment(v6, payload, 56, 64, more: true)); // overlaps the first by 8 bytes

        _bed.Counters[StackDropReason.FragmentOverlap].Should().Be(3, "the overlapping fragment and the two held");
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        _bed.Stack.MemoryInUse.Should().Be(0);

        _bed.Inject(Fragment(v6, payload, 64, 64, more: true)); // the rest no longer completes anything
        NothingDelivered(socket);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_second_last_fragment_with_another_end_drops_the_datagram(bool v6)
    {
        using var socket = Bind(v6);
        var payload = UdpPayload(v6, Data(200));
        _bed.Inject(Fragment(v6, payload, 0, 64, more: true));
        _bed.Inject(Fragment(v6, payload, 128, payload.Length - 128, more: false));
        _bed.Inject(Fragment(v6, payload, 64, 64, more: false)); // claims the datagram ends at 128

        _bed.Counters[StackDropReason.FragmentMalformed].Should().Be(3);
        NothingDelivered(socket);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_fragment_past_the_known_end_drops_the_datagram(bool v6)
    {
        using var socket = Bind(v6);
        var payload = UdpPayload(v6, Data(300));
        _bed.Inject(Fragment(v6, payload, 64, 64, more: false));
        _bed.Inject(Fragment(v6, payload, 128, 64, more: true));

        _bed.Counters[StackDropReason.FragmentMalformed].Should().Be(2);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_non_last_fragment_that_is_not_a_multiple_of_eight_is_malformed(bool v6)
    {
        var payload = UdpPayload(v6, Data(100));
        _bed.Inject(Fragment(v6, payload, 0, 50, more: true));
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FragmentMalformed] = 1 });
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_empty_fragment_is_malformed(bool v6)
    {
        var payload = UdpPayload(v6, Data(100));
        _bed.Inject(Fragment(v6, payload, 64, 0, more: false));
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FragmentMalformed] = 1 });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_fragment_ending_beyond_65535_bytes_is_malformed(bool v6)
    {
        var payload = new byte[65536];
        _bed.Inject(Fragment(v6, payload, 65512, v6 ? 24 : 8, more: false)); // IPv4: 20 + 65520 > 65535; IPv6: 65536 > 65535
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FragmentMalformed] = 1 });
        _bed.Inject(Fragment(v6, payload, 65512, v6 ? 23 : 3, more: false)); // just fits
        _bed.Stack.Reassembler.DatagramCount.Should().Be(1);
    }

    [Fact]
    public void A_datagram_that_only_exceeds_65535_bytes_with_the_first_fragments_header_is_malformed()
    {
        var payload = new byte[65515];
        var fragments = TestPackets.Fragments(RemoteV4, LocalV4, TestPackets.Udp, payload, 1024, 8);
        fragments[0] = TestPackets.Ipv4(RemoteV4, LocalV4, TestPackets.Udp, payload.AsSpan(0, 1024), 8, 0x2000, options: new byte[40]);
        _bed.InjectAll(fragments);
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FragmentMalformed] = fragments.Count });
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        _bed.Counters.PacketsDelivered.Should().Be(0);
    }

    [Fact]
    public void The_largest_IPv6_datagram_is_reassembled()
    {
        using var socket = Bind(true);
        var data = Data(65527);
        _bed.InjectAll(TestPackets.Fragments(RemoteV6, LocalV6, TestPackets.Udp, UdpPayload(true, data), 1232, 9));
        ReceiveNow(socket).Should().Equal(data);
    }

    [Fact]
    public void The_largest_IPv4_datagram_is_reassembled()
    {
        using var socket = Bind(false);
        var data = Data(65507);
        _bed.InjectAll(TestPackets.Fragments(RemoteV4, LocalV4, TestPackets.Udp, UdpPayload(false, data), 1400, 9));
        ReceiveNow(socket).Should().Equal(data);
    }

    [Fact]
    public void IPv4_fragments_of_different_protocols_are_different_datagrams()
    {
        var payload = UdpPayload(false, Data(100));
        _bed.Inject(TestPackets.Fragment(RemoteV4, LocalV4, TestPackets.Udp, payload, 0, 64, true, 5));
        _bed.Inject(TestPackets.Fragment(RemoteV4, LocalV4, 99, payload, 64, payload.Length - 64, false, 5));
        _bed.Stack.Reassembler.DatagramCount.Should().Be(2);
    }

    [Fact]
    public void IPv6_fragments_are_identified_without_the_next_header()
    {
        using var socket = Bind(true);
        var payload = UdpPayload(true, Data(100));
        _bed.Inject(TestPackets.Fragment(RemoteV6, LocalV6, TestPackets.Udp, payload, 0, 64, true, 5));
        _bed.Inject(TestPackets.Fragment(RemoteV6, LocalV6, 99, payload, 64, payload.Length - 64, false, 5)); // RFC 8200: first fragment's wins
        ReceiveNow(socket).Should().Equal(payload[8..]);
    }

    [Fact]
    public void An_IPv6_first_fragment_without_the_whole_header_chain_is_malformed()
    {
        // Destination options, then a UDP header that does not fit in the first fragment.
        var payload = TestPackets.Concat(TestPackets.ExtensionHeader(TestPackets.Udp, new byte[6]), UdpPayload(true, Data(100)));
        _bed.Inject(TestPackets.Fragment(RemoteV6, LocalV6, 60, payload, 0, 8, true, 5));
        _bed.Counters[StackDropReason.FragmentMalformed].Should().Be(1);
    }

    [Fact]
    public void IPv6_extension_headers_after_the_fragment_header_are_processed_after_reassembly()
    {
        using var socket = Bind(true);
        var payload = TestPackets.Concat(TestPackets.ExtensionHeader(TestPackets.Udp, new byte[] { 1, 4, 0, 0, 0, 0 }), UdpPayload(true, Data(300)));
        _bed.InjectAll(TestPackets.Fragments(RemoteV6, LocalV6, 60, payload, 128, 5));
        ReceiveNow(socket).Should().Equal(payload[16..]);
    }

    [Fact]
    public void A_fragment_header_inside_a_fragmented_datagram_is_refused()
    {
        var inner = TestPackets.Concat(TestPackets.FragmentHeader(TestPackets.Udp, 0, true, 1), UdpPayload(true, Data(100)));
        _bed.InjectAll(TestPackets.Fragments(RemoteV6, LocalV6, 44, inner, 64, 5));
        _bed.Counters[StackDropReason.FragmentMalformed].Should().Be(1, "the first fragment's header chain is not acceptable");
        _bed.Counters.DatagramsReassembled.Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_incomplete_datagram_expires_and_time_exceeded_quotes_its_first_fragment(bool v6)
    {
        var payload = UdpPayload(v6, Data(300));
        var first = Fragment(v6, payload, 0, 128, more: true);
        _bed.Inject(first);
        _bed.Inject(Fragment(v6, payload, 256, payload.Length - 256, more: false));

        _bed.Time.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromTicks(1));
        _bed.Stack.Reassembler.DatagramCount.Should().Be(1, "not yet");
        _bed.Link.Count.Should().Be(0);

        _bed.Time.Advance(TimeSpan.FromTicks(1));
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        _bed.Drops.Should().Equal(new Dictionary<StackDropReason, long> { [StackDropReason.FragmentTimeout] = 2 });
        _bed.Stack.MemoryInUse.Should().Be(0);

        var error = _bed.Link.DrainParsed().Should().ContainSingle().Subject;
        error.Destination.Should().Be(Remote(v6));
        error.Source.Should().Be(Local(v6));
        error.Payload[0].Should().Be(v6 ? (byte)3 : (byte)11, "time exceeded");
        error.Payload[1].Should().Be(1, "fragment reassembly time exceeded");
        error.Payload[8..].Should().Equal(first, "the first fragment is quoted");
        (v6 ? TestPackets.TransportChecksum(Local(v6), Remote(v6), TestPackets.IcmpV6, error.Payload) : TestPackets.Checksum(error.Payload))
            .Should().Be(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void No_time_exceeded_without_the_first_fragment(bool v6)
    {
        var payload = UdpPayload(v6, Data(300));
        _bed.Inject(Fragment(v6, payload, 128, 64, more: true));
        _bed.Time.Advance(TimeSpan.FromSeconds(31));
        _bed.Counters[StackDropReason.FragmentTimeout].Should().Be(1);
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void No_time_exceeded_about_a_fragmented_ICMP_error()
    {
        var quoted = new byte[200];
        var icmpError = TestPackets.IcmpMessage(RemoteV4, LocalV4, 3, 1, 0, quoted);
        _bed.Inject(TestPackets.Fragment(RemoteV4, LocalV4, TestPackets.Icmp, icmpError, 0, 64, true, 77));
        _bed.Time.Advance(TimeSpan.FromSeconds(31));
        _bed.Counters[StackDropReason.FragmentTimeout].Should().Be(1);
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void Expiry_uses_one_timer_and_keeps_later_datagrams()
    {
        var payload = UdpPayload(false, Data(300));
        _bed.Inject(Fragment(false, payload, 128, 64, more: true, id: 1));
        _bed.Time.Advance(TimeSpan.FromSeconds(10));
        _bed.Inject(Fragment(false, payload, 128, 64, more: true, id: 2));
        _bed.Time.Advance(TimeSpan.FromSeconds(20));
        _bed.Stack.Reassembler.DatagramCount.Should().Be(1, "the first expired, the second has 10 s left");
        _bed.Time.Advance(TimeSpan.FromSeconds(10));
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        _bed.Counters[StackDropReason.FragmentTimeout].Should().Be(2);
    }

    [Fact]
    public void A_flood_of_incomplete_datagrams_stays_within_the_byte_limit_and_evicts_the_oldest()
    {
        using var bed = new StackTestBed(options => options.MaxReassemblyBytes = 100_000);
        var payload = UdpPayload(false, Data(2000));
        int fragments = 0;
        for (uint id = 0; id < 5000; id++)
        {
            bed.Inject(Fragment(false, payload, 0, 1000, more: true, id: id));
            fragments++;
            bed.Stack.Reassembler.BytesHeld.Should().BeLessThanOrEqualTo(100_000);
        }
        bed.Stack.Reassembler.DatagramCount.Should().Be(100, "100 x 1000 bytes fit");
        bed.Counters[StackDropReason.FragmentBudgetExceeded].Should().Be(4900);
        bed.Stack.MemoryInUse.Should().BeLessThan(100 * (1024 + 256 + 64) + 1);

        // Legitimate traffic still gets through: its fragments evict the oldest flood entries.
        using var socket = bed.Stack.BindUdp(new IPEndPoint(LocalV4, 7000));
        bed.InjectAll(TestPackets.Fragments(RemoteV4, LocalV4, TestPackets.Udp, payload, 1000, 100_000));
        ReceiveNow(socket).Should().Equal(payload[8..]);
        fragments.Should().Be(5000);
    }

    [Fact]
    public void A_flood_of_tiny_fragments_is_bounded_by_the_datagram_limit()
    {
        var payload = UdpPayload(false, Data(2000));
        for (uint id = 0; id < FragmentReassembler.MaxDatagrams * 3; id++)
        {
            _bed.Inject(Fragment(false, payload, 8, 8, more: true, id: id));
        }
        _bed.Stack.Reassembler.DatagramCount.Should().Be(FragmentReassembler.MaxDatagrams);
        _bed.Counters[StackDropReason.FragmentBudgetExceeded].Should().Be(FragmentReassembler.MaxDatagrams * 2);
        _bed.Stack.MemoryInUse.Should().BeLessThan(FragmentReassembler.MaxDatagrams * 300L);
    }

    [Fact]
    public void Too_many_fragments_for_one_datagram_drop_it()
    {
        var payload = UdpPayload(false, Data(4000));
        for (int i = 0; i <= FragmentReassembler.MaxFragmentsPerDatagram; i++)
        {
            _bed.Inject(Fragment(false, payload, i * 16, 8, more: true));
        }
        _bed.Counters[StackDropReason.FragmentBudgetExceeded].Should().Be(FragmentReassembler.MaxFragmentsPerDatagram + 1);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
    }

    [Fact]
    public void Fragments_are_refused_when_the_stack_budget_is_exhausted()
    {
        var budget = _bed.Stack.Context.Budget;
        budget.TryReserve(budget.Limit - 1000).Should().BeTrue();
        var payload = UdpPayload(false, Data(3000));
        _bed.Inject(Fragment(false, payload, 0, 1600, more: true));
        _bed.Counters[StackDropReason.FragmentBudgetExceeded].Should().Be(1);
        _bed.Stack.Reassembler.DatagramCount.Should().Be(0);
        budget.Release(budget.Limit - 1000);
        budget.Used.Should().Be(0);
    }

    [Fact]
    public void Disposal_releases_held_fragments()
    {
        _bed.Inject(Fragment(false, UdpPayload(false, Data(300)), 0, 64, more: true));
        _bed.Stack.MemoryInUse.Should().BeGreaterThan(0);
        _bed.Stack.Dispose();
        _bed.Stack.MemoryInUse.Should().Be(0);
        _bed.Time.Advance(TimeSpan.FromMinutes(1));
        _bed.Link.Count.Should().Be(0);
    }

    [Fact]
    public void The_reassembled_IPv4_header_is_unfragmented_and_valid()
    {
        var received = new List<byte[]>();
        var payload = TestPackets.IcmpMessage(RemoteV4, LocalV4, 8, 0, 0x00010001, Data(2000));
        _bed.InjectAll(TestPackets.Fragments(RemoteV4, LocalV4, TestPackets.Icmp, payload, 1000, 3));
        // The echo reply quotes nothing, but its existence proves the datagram reached ICMP intact.
        _bed.Counters.IcmpEchoRepliesSent.Should().Be(1);
        var replies = _bed.Link.DrainParsed();
        var joined = TestPackets.Join(replies);
        joined[0].Should().Be(0);
        joined[8..].Should().Equal(payload[8..]);
        BinaryPrimitives.ReadUInt32BigEndian(joined.AsSpan(4)).Should().Be(0x00010001u);
    }
}
