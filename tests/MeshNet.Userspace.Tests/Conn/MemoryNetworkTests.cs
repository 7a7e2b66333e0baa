using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

/// <summary>Delivery: sources, ordering, both modes, queue limits, the filter, IPv6.</summary>
[Trait("Category", "Unit")]
public sealed class MemoryNetworkTests : MemoryNetworkTestBase
{
    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void A_datagram_reaches_the_bind_at_its_destination_with_the_sender_as_source(MemoryDeliveryMode mode)
    {
        MemoryNetwork network = NewNetwork(mode);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var atA = new RecordingReceiver();
        var atB = new RecordingReceiver();
        ushort portA = a.Open(0, atA);
        ushort portB = b.Open(51820, atB);

        a.Send("hello"u8, At(B, 51820)).Should().BeTrue();
        if (mode == MemoryDeliveryMode.Manual)
        {
            atB.Pending.Should().Be(0, "nothing moves until DeliverPending");
            network.DeliverPending().Should().Be(1);
        }

        Received received = atB.Take();
        received.Data.Should().Equal("hello"u8.ToArray());
        received.Source.Should().Be(At(A, portA));
        received.Source.Should().Be(a.LocalEndpoint);
        b.LocalEndpoint.Should().Be(At(B, portB));
        network.Sent.Should().Be(1);
        network.Delivered.Should().Be(1);
        network.Dropped.Should().Be(0);
        atA.Pending.Should().Be(0);
    }

    [Fact]
    public void Background_delivery_runs_on_a_thread_per_bind()
    {
        MemoryNetwork network = NewNetwork();
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var received = new RecordingReceiver();
        a.Open(0, new RecordingReceiver());
        b.Open(0, received);

        a.Send("x"u8, b.LocalEndpoint);

        Thread thread = received.Take().Thread;
        thread.Should().NotBeSameAs(Thread.CurrentThread);
        thread.IsBackground.Should().BeTrue();
        thread.Name.Should().Be($"MeshNet memory {b.LocalEndpoint}");
    }

    [Fact]
    public void Background_delivery_keeps_each_senders_order()
    {
        const int Count = 2_000;
        MemoryNetwork network = NewNetwork();
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var received = new RecordingReceiver();
        a.Open(0, new RecordingReceiver());
        b.Open(0, received);

        for (int i = 0; i < Count; i++)
        {
            a.Send(BitConverter.GetBytes(i), b.LocalEndpoint).Should().BeTrue();
        }

        for (int i = 0; i < Count; i++)
        {
            BitConverter.ToInt32(received.Take().Data).Should().Be(i);
        }
        network.Delivered.Should().Be(Count);
    }

    [Fact]
    public void Manual_delivery_is_FIFO_across_the_whole_network()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        var order = new List<(string Bind, byte Value)>();
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        MemoryBind c = network.CreateBind(C);
        a.Open(0, new RecordingReceiver((d, in _) => order.Add(("a", d[0]))));
        b.Open(0, new RecordingReceiver((d, in _) => order.Add(("b", d[0]))));
        c.Open(0, new RecordingReceiver((d, in _) => order.Add(("c", d[0]))));

        a.Send([1], b.LocalEndpoint);
        c.Send([2], b.LocalEndpoint);
        b.Send([3], c.LocalEndpoint);
        c.Send([4], a.LocalEndpoint);
        a.Send([5], b.LocalEndpoint);

        network.DeliverPending().Should().Be(5);
        order.Should().Equal(("b", 1), ("b", 2), ("c", 3), ("a", 4), ("b", 5));
        network.DeliverPending().Should().Be(0);
    }

    [Fact]
    public void DeliverPending_delivers_datagrams_sent_while_delivering_up_to_the_cap()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        int bounces = 0;
        // Each side echoes with the counter incremented, until it reaches 10.
        DatagramHandler bounce(MemoryBind self) => (datagram, in source) =>
        {
            Interlocked.Increment(ref bounces);
            if (datagram[0] < 10)
            {
                self.Send([(byte)(datagram[0] + 1)], source);
            }
        };
        a.Open(0, new RecordingReceiver(bounce(a)));
        b.Open(0, new RecordingReceiver(bounce(b)));

        a.Send([1], b.LocalEndpoint);

        network.DeliverPending().Should().Be(10, "the whole exchange runs in one call");
        bounces.Should().Be(10);

        // An endless exchange stops at the cap, with the next datagram still queued.
        MemoryBind c = network.CreateBind(C);
        MemoryBind d = network.CreateBind(IPAddress.Parse("10.0.0.4"));
        c.Open(0, new RecordingReceiver((datagram, in source) => c.Send(datagram, source)));
        d.Open(0, new RecordingReceiver((datagram, in source) => d.Send(datagram, source)));
        c.Send([0], d.LocalEndpoint);
        network.DeliverPending(50).Should().Be(50);
        network.DeliverPending(1).Should().Be(1);
        c.Close();
        d.Close();
        network.DeliverPending().Should().Be(0);
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void A_full_queue_drops_and_counts(MemoryDeliveryMode mode)
    {
        MemoryNetwork network = NewNetwork(mode, capacity: 4);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        using var inReceiver = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var received = new RecordingReceiver((datagram, in _) =>
        {
            if (datagram[0] == 0xFF)
            {
                inReceiver.Set();
                release.Wait(RecordingReceiver.Timeout);
            }
        });
        a.Open(0, new RecordingReceiver());
        b.Open(0, received);
        if (mode == MemoryDeliveryMode.Background)
        {
            // Occupy the delivery thread so the queue fills up behind it.
            a.Send([0xFF], b.LocalEndpoint);
            inReceiver.Wait(RecordingReceiver.Timeout).Should().BeTrue();
        }

        for (byte i = 0; i < 10; i++)
        {
            a.Send([i], b.LocalEndpoint).Should().BeTrue("loss happens at the receiver, as with UDP");
        }
        release.Set();

        network.Dropped.Should().Be(6);
        if (mode == MemoryDeliveryMode.Manual)
        {
            network.DeliverPending().Should().Be(4);
        }
        else
        {
            received.Take().Data.Should().Equal(0xFF);
        }
        for (byte i = 0; i < 4; i++)
        {
            received.Take().Data.Should().Equal(i);
        }
        received.ExpectNone(Quiet);
    }

    [Fact]
    public void A_datagram_to_no_open_bind_is_dropped_and_counted()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind a = network.CreateBind(A);
        a.Open(0, new RecordingReceiver());

        a.Send("void"u8, At(B, 9)).Should().BeTrue();

        network.Sent.Should().Be(1);
        network.Dropped.Should().Be(1);
        network.DeliverPending().Should().Be(0);
    }

    [Fact]
    public void Filter_sees_each_datagram_and_can_drop_or_duplicate_it()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var received = new RecordingReceiver();
        a.Open(0, new RecordingReceiver());
        b.Open(0, received);
        var seen = new List<(NetEndpoint Source, NetEndpoint Destination, byte Value)>();
        network.Filter = (in source, in destination, datagram) =>
        {
            seen.Add((source, destination, datagram[0]));
            return datagram[0] switch
            {
                1 => MemoryVerdict.Drop,
                2 => MemoryVerdict.Duplicate,
                _ => MemoryVerdict.Deliver,
            };
        };

        a.Send([1], b.LocalEndpoint);
        a.Send([2], b.LocalEndpoint);
        a.Send([3], b.LocalEndpoint);
        network.DeliverPending().Should().Be(3);

        received.Drain().Select(r => r.Data[0]).Should().Equal(2, 2, 3);
        seen.Should().Equal((a.LocalEndpoint, b.LocalEndpoint, 1), (a.LocalEndpoint, b.LocalEndpoint, 2), (a.LocalEndpoint, b.LocalEndpoint, 3));
        network.Sent.Should().Be(3);
        network.Duplicated.Should().Be(1);
        network.Dropped.Should().Be(1);
        network.Delivered.Should().Be(3);
    }

    [Fact]
    public void A_throwing_filter_drops_the_datagram_and_Send_does_not_throw()
    {
        var logger = new ListLogger();
        using var network = new MemoryNetwork(new MemoryNetworkOptions { Delivery = MemoryDeliveryMode.Manual, Logger = logger });
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        a.Open(0, new RecordingReceiver());
        b.Open(0, new RecordingReceiver());
        network.Filter = (in _, in _, _) => throw new InvalidOperationException("filter bug");

        a.Send("x"u8, b.LocalEndpoint).Should().BeTrue();

        network.Dropped.Should().Be(1);
        network.DeliverPending().Should().Be(0);
        logger.Entries.Should().ContainSingle(e => e.Id.Id == 2151);
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void A_throwing_receiver_is_logged_and_delivery_continues(MemoryDeliveryMode mode)
    {
        var logger = new ListLogger();
        using var network = new MemoryNetwork(new MemoryNetworkOptions { Delivery = mode, Logger = logger });
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var atB = new RecordingReceiver((datagram, in _) =>
        {
            if (datagram[0] == 0xFF)
            {
                throw new InvalidOperationException("receiver bug");
            }
        });
        a.Open(0, new RecordingReceiver());
        b.Open(0, atB);

        a.Send([0xFF], b.LocalEndpoint);
        a.Send([1], b.LocalEndpoint);
        if (mode == MemoryDeliveryMode.Manual)
        {
            network.DeliverPending().Should().Be(2);
        }

        atB.Take().Data.Should().Equal(1);
        logger.Entries.Should().ContainSingle(e => e.Id.Id == 2150);
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void IPv6_binds_exchange_datagrams_and_families_do_not_mix(MemoryDeliveryMode mode)
    {
        MemoryNetwork network = NewNetwork(mode);
        IPAddress v6a = IPAddress.Parse("fd7a:115c:a1e0::1");
        IPAddress v6b = IPAddress.Parse("fd7a:115c:a1e0::2");
        MemoryBind a = network.CreateBind(v6a);
        MemoryBind b = network.CreateBind(v6b);
        MemoryBind v4 = network.CreateBind(A);
        var atA = new RecordingReceiver();
        var atB = new RecordingReceiver();
        ushort portA = a.Open(0, atA);
        ushort portB = b.Open(41641, atB);
        v4.Open(0, new RecordingReceiver());

        a.Send("six"u8, At(v6b, portB)).Should().BeTrue();
        a.Send("x"u8, v4.LocalEndpoint).Should().BeFalse("an IPv6 bind cannot reach IPv4");
        v4.Send("x"u8, b.LocalEndpoint).Should().BeFalse("an IPv4 bind cannot reach IPv6");
        if (mode == MemoryDeliveryMode.Manual)
        {
            network.DeliverPending().Should().Be(1);
        }

        Received received = atB.Take();
        received.Data.Should().Equal("six"u8.ToArray());
        received.Source.Should().Be(At(v6a, portA));
        received.Source.IsIPv4.Should().BeFalse();
        network.Sent.Should().Be(1);
    }

    [Fact]
    public void An_IPv4_mapped_address_is_the_IPv4_address()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind mapped = network.CreateBind(A.MapToIPv6());
        MemoryBind b = network.CreateBind(B);
        var atB = new RecordingReceiver();
        mapped.Open(0, new RecordingReceiver());
        b.Open(0, atB);

        mapped.Address.Should().Be(A);
        mapped.Send("m"u8, b.LocalEndpoint).Should().BeTrue();
        network.DeliverPending().Should().Be(1);
        atB.Take().Source.Should().Be(At(A, mapped.Port));
    }

    [Fact]
    public void Concurrent_senders_lose_nothing_within_capacity()
    {
        const int Senders = 4, PerSender = 500;
        MemoryNetwork network = NewNetwork(capacity: Senders * PerSender);
        MemoryBind sink = network.CreateBind(B);
        var received = new RecordingReceiver();
        sink.Open(0, received);
        var senders = new MemoryBind[Senders];
        for (int i = 0; i < Senders; i++)
        {
            senders[i] = network.CreateBind(IPAddress.Parse($"10.1.0.{i + 1}"));
            senders[i].Open(0, new RecordingReceiver());
        }

        Parallel.For(0, Senders, s =>
        {
            for (int i = 0; i < PerSender; i++)
            {
                senders[s].Send(BitConverter.GetBytes(i), sink.LocalEndpoint);
            }
        });

        var lastBySource = new Dictionary<NetEndpoint, int>();
        for (int n = 0; n < Senders * PerSender; n++)
        {
            Received r = received.Take();
            int value = BitConverter.ToInt32(r.Data);
            lastBySource.GetValueOrDefault(r.Source, -1).Should().Be(value - 1, "each sender's datagrams arrive in order");
            lastBySource[r.Source] = value;
        }
        network.Dropped.Should().Be(0);
        network.Delivered.Should().Be(Senders * PerSender);
    }
}
