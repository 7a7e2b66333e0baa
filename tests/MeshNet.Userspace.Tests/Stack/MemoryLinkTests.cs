using System.Collections.Concurrent;
using MeshNet.Userspace.Link;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>MemoryLink: both delivery modes, ordering, capacity, the filter, accounting, disposal.</summary>
[Trait("Category", "Unit")]
public sealed class MemoryLinkTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>Records packets and the thread each arrived on; can run an action per packet.</summary>
    private sealed class Receiver(Action<byte[]>? onPacket = null) : IPacketSink
    {
        public BlockingCollection<(byte[] Packet, Thread Thread)> Packets { get; } = [];

        public void WritePacket(ReadOnlySpan<byte> packet)
        {
            var copy = packet.ToArray();
            Packets.Add((copy, Thread.CurrentThread));
            onPacket?.Invoke(copy);
        }

        public byte[] Take()
        {
            Packets.TryTake(out var item, Patience).Should().BeTrue("a packet should arrive");
            return item.Packet;
        }
    }

    [Fact]
    public void Background_delivery_keeps_order_and_runs_on_its_own_thread()
    {
        using var link = new MemoryLink();
        var atB = new Receiver();
        link.B.Receiver = atB;
        for (int i = 0; i < 1000; i++)
        {
            link.A.WritePacket(BitConverter.GetBytes(i));
        }
        for (int i = 0; i < 1000; i++)
        {
            atB.Packets.TryTake(out var item, Patience).Should().BeTrue();
            BitConverter.ToInt32(item.Packet).Should().Be(i);
            item.Thread.Should().NotBeSameAs(Thread.CurrentThread);
            item.Thread.Name.Should().Be("MeshNet memory link to B");
        }
        link.A.PacketsSent.Should().Be(1000);
        link.B.PacketsReceived.Should().Be(1000);
        link.PacketsDropped.Should().Be(0);
    }

    [Fact]
    public void A_receiver_that_answers_is_never_called_inside_WritePacket()
    {
        using var link = new MemoryLink();
        int depth = 0;
        int maxDepth = 0;
        link.B.Receiver = new Receiver(packet =>
        {
            int now = Interlocked.Increment(ref depth);
            maxDepth = Math.Max(maxDepth, now);
            if (packet[0] < 50)
            {
                link.B.WritePacket([(byte)(packet[0] + 1)]); // answer from inside the receiver
            }
            Interlocked.Decrement(ref depth);
        });
        link.A.Receiver = new Receiver(packet => link.A.WritePacket(packet)); // and bounce back
        link.A.WritePacket([0]);
        SpinWait.SpinUntil(() => link.B.PacketsReceived >= 26, Patience).Should().BeTrue();
        maxDepth.Should().Be(1);
    }

    [Fact]
    public void Manual_delivery_waits_and_keeps_FIFO_order_across_directions()
    {
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
        var log = new List<string>();
        link.A.Receiver = new Receiver(packet => log.Add($"A{packet[0]}"));
        link.B.Receiver = new Receiver(packet => log.Add($"B{packet[0]}"));

        link.A.WritePacket([1]);
        link.B.WritePacket([2]);
        link.A.WritePacket([3]);
        log.Should().BeEmpty("nothing moves until DeliverPending");
        link.PendingCount.Should().Be(3);

        link.DeliverPending().Should().Be(3);
        log.Should().Equal("B1", "A2", "B3");
        link.PendingCount.Should().Be(0);
    }

    [Fact]
    public void Manual_delivery_includes_packets_written_during_delivery_up_to_the_cap()
    {
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
        var thread = Thread.CurrentThread;
        link.A.Receiver = new Receiver(packet => link.A.WritePacket(packet));
        link.B.Receiver = new Receiver(packet =>
        {
            Thread.CurrentThread.Should().BeSameAs(thread);
            link.B.WritePacket(packet); // endless ping-pong
        });
        link.A.WritePacket([7]);

        link.DeliverPending(maxPackets: 10).Should().Be(10);
        link.PendingCount.Should().Be(1);
        link.DeliverPending(maxPackets: 5).Should().Be(5);
    }

    [Fact]
    public void DeliverPending_is_for_manual_links()
    {
        using var link = new MemoryLink();
        var deliver = () => link.DeliverPending();
        deliver.Should().Throw<InvalidOperationException>();
    }

    [Theory]
    [InlineData(MemoryLinkDeliveryMode.Manual)]
    [InlineData(MemoryLinkDeliveryMode.Background)]
    public void A_full_direction_drops_and_counts(MemoryLinkDeliveryMode mode)
    {
        using var release = new ManualResetEventSlim();
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = mode, QueueCapacity = 2 });
        link.B.Receiver = new Receiver(_ => release.Wait(Patience)); // blocks the delivery thread on the first packet
        link.A.Receiver = new Receiver();
        link.A.WritePacket([0]);
        if (mode == MemoryLinkDeliveryMode.Background)
        {
            SpinWait.SpinUntil(() => link.B.PacketsReceived == 1, Patience).Should().BeTrue();
        }
        else
        {
            link.A.WritePacket([1]);
        }
        for (int i = 0; i < 5; i++)
        {
            link.A.WritePacket([2]);
        }
        link.B.WritePacket([3]); // the other direction has its own room
        link.B.PacketsDropped.Should().Be(mode == MemoryLinkDeliveryMode.Manual ? 5 : 3);
        link.A.PacketsDropped.Should().Be(0);
        release.Set();
    }

    [Fact]
    public void The_filter_drops_and_duplicates()
    {
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
        var atB = new Receiver();
        link.B.Receiver = atB;
        link.Filter = (sender, packet) =>
        {
            sender.Should().BeSameAs(link.A);
            return packet[0] switch
            {
                0 => MemoryLinkVerdict.Drop,
                1 => MemoryLinkVerdict.Duplicate,
                2 => throw new InvalidOperationException("filter bug"),
                _ => MemoryLinkVerdict.Deliver,
            };
        };
        link.A.WritePacket([0]);
        link.A.WritePacket([1]);
        link.A.WritePacket([2]);
        link.A.WritePacket([3]);
        link.DeliverPending().Should().Be(3);

        atB.Packets.Select(item => item.Packet[0]).Should().Equal(1, 1, 3);
        link.A.PacketsSent.Should().Be(4);
        link.B.PacketsDuplicated.Should().Be(1);
        link.B.PacketsDropped.Should().Be(2);
        link.B.PacketsReceived.Should().Be(3);
        (link.PacketsSent + link.PacketsDuplicated).Should().Be(link.PacketsReceived + link.PacketsDropped);
    }

    [Fact]
    public void Packets_are_copied_on_write()
    {
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
        var atB = new Receiver();
        link.B.Receiver = atB;
        var packet = new byte[] { 1, 2, 3 };
        link.A.WritePacket(packet);
        packet[0] = 9;
        link.DeliverPending();
        atB.Take().Should().Equal(1, 2, 3);
    }

    [Fact]
    public void Without_a_receiver_and_over_the_size_limit_packets_are_dropped()
    {
        using var link = new MemoryLink(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual, MaxPacketSize = 100 });
        link.A.WritePacket(new byte[10]);
        link.DeliverPending().Should().Be(0);
        link.B.Receiver = new Receiver();
        link.A.WritePacket(new byte[101]);
        link.A.WritePacket(new byte[100]);
        link.DeliverPending().Should().Be(1);
        link.B.PacketsDropped.Should().Be(2);
    }

    [Fact]
    public void A_receiver_that_throws_does_not_stop_delivery()
    {
        using var link = new MemoryLink();
        var good = new Receiver();
        link.B.Receiver = new Receiver(packet =>
        {
            if (packet[0] == 0)
            {
                throw new InvalidOperationException("receiver bug");
            }
            good.WritePacket(packet);
        });
        link.A.WritePacket([0]);
        link.A.WritePacket([1]);
        good.Take().Should().Equal(1);
    }

    [Theory]
    [InlineData(MemoryLinkDeliveryMode.Manual)]
    [InlineData(MemoryLinkDeliveryMode.Background)]
    public void Disposal_discards_queued_packets_and_drops_later_ones(MemoryLinkDeliveryMode mode)
    {
        var link = new MemoryLink(new MemoryLinkOptions { Delivery = mode });
        using var release = new ManualResetEventSlim();
        link.B.Receiver = new Receiver(_ => release.Wait(TimeSpan.FromMilliseconds(200)));
        for (int i = 0; i < 10; i++)
        {
            link.A.WritePacket([1]);
        }
        link.Dispose();
        link.A.WritePacket([2]);
        link.Dispose();

        (link.B.PacketsReceived + link.B.PacketsDropped).Should().Be(11, "every packet is accounted for");
        link.B.PacketsDropped.Should().BeGreaterThanOrEqualTo(mode == MemoryLinkDeliveryMode.Manual ? 11 : 1);
        long received = link.B.PacketsReceived;
        Thread.Sleep(50);
        link.B.PacketsReceived.Should().Be(received, "no delivery after Dispose returned");
        if (mode == MemoryLinkDeliveryMode.Manual)
        {
            var deliver = () => link.DeliverPending();
            deliver.Should().Throw<ObjectDisposedException>();
        }
    }

    [Fact]
    public void CreatePair_gives_two_ends_of_one_link()
    {
        var (a, b) = MemoryLink.CreatePair();
        using var link = a.Link;
        b.Link.Should().BeSameAs(link);
        a.Peer.Should().BeSameAs(b);
        b.Peer.Should().BeSameAs(a);
        a.Name.Should().Be("A");
    }

    [Fact]
    public void Invalid_options_are_refused()
    {
        var create = () => new MemoryLink(new MemoryLinkOptions { QueueCapacity = 0 });
        create.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("QueueCapacity");
        create = () => new MemoryLink(new MemoryLinkOptions { MaxPacketSize = 65536 });
        create.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("MaxPacketSize");
        create = () => new MemoryLink(new MemoryLinkOptions { Delivery = (MemoryLinkDeliveryMode)7 });
        create.Should().Throw<ArgumentOutOfRangeException>().WithParameterName("Delivery");
    }
}
