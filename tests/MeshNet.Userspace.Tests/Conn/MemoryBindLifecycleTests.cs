using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

/// <summary>Ports, reopening, closing, disposing and misuse of memory binds and networks.</summary>
[Trait("Category", "Unit")]
public sealed class MemoryBindLifecycleTests : MemoryNetworkTestBase
{
    [Fact]
    public void Ports_conflict_per_address_and_port_zero_picks_a_free_one()
    {
        MemoryNetwork network = NewNetwork();
        MemoryBind first = network.CreateBind(A);
        MemoryBind second = network.CreateBind(A);
        MemoryBind elsewhere = network.CreateBind(B);
        first.Open(51820, new RecordingReceiver()).Should().Be(51820);

        second.Invoking(s => s.Open(51820, new RecordingReceiver()))
            .Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.AddressAlreadyInUse);
        second.Port.Should().Be(0);
        elsewhere.Open(51820, new RecordingReceiver()).Should().Be(51820, "the same port at another address is free");

        ushort picked = second.Open(0, new RecordingReceiver());
        picked.Should().BeGreaterThanOrEqualTo(49152).And.NotBe(51820);
        MemoryBind third = network.CreateBind(A);
        third.Open(0, new RecordingReceiver()).Should().NotBe(picked);

        first.Close();
        second.Open(51820, new RecordingReceiver()).Should().Be(51820, "a closed port can be taken");
    }

    [Fact]
    public void Reopening_moves_the_bind_to_its_new_port()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var atA = new RecordingReceiver();
        var oldReceiver = new RecordingReceiver();
        var newReceiver = new RecordingReceiver();
        a.Open(1000, atA);
        b.Open(2000, oldReceiver);

        b.Open(3000, newReceiver).Should().Be(3000);
        a.Send([1], At(B, 2000));
        a.Send([2], At(B, 3000));
        a.Open(4000, atA);
        b.Send([3], At(A, 4000));
        network.DeliverPending().Should().Be(2);

        oldReceiver.Pending.Should().Be(0);
        newReceiver.Take().Data.Should().Equal(2);
        atA.Take().Source.Should().Be(At(B, 3000));
        network.Dropped.Should().Be(1, "nothing listens on the old port");
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void Close_discards_queued_datagrams(MemoryDeliveryMode mode)
    {
        MemoryNetwork network = NewNetwork(mode);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        MemoryBind c = network.CreateBind(C);
        using var inReceiver = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var atB = new RecordingReceiver((datagram, in _) =>
        {
            if (datagram[0] == 0xFF)
            {
                inReceiver.Set();
                release.Wait(RecordingReceiver.Timeout);
            }
        });
        var atC = new RecordingReceiver();
        a.Open(0, new RecordingReceiver());
        b.Open(0, atB);
        c.Open(0, atC);
        if (mode == MemoryDeliveryMode.Background)
        {
            a.Send([0xFF], b.LocalEndpoint);
            inReceiver.Wait(RecordingReceiver.Timeout).Should().BeTrue();
        }
        a.Send([1], b.LocalEndpoint);
        a.Send([9], c.LocalEndpoint);
        a.Send([2], b.LocalEndpoint);
        a.Send([3], b.LocalEndpoint);

        Thread close = RecordingReceiver.Run(b.Close);
        if (mode == MemoryDeliveryMode.Background)
        {
            close.Join(Quiet).Should().BeFalse("Close waits for the receiver call in progress");
            release.Set();
        }
        close.Join(RecordingReceiver.Timeout).Should().BeTrue();

        network.Dropped.Should().Be(3);
        if (mode == MemoryDeliveryMode.Manual)
        {
            network.DeliverPending().Should().Be(1, "the datagram for another bind stays queued, in order");
        }
        atC.Take().Data.Should().Equal(9);
        atB.Drain().Select(r => r.Data[0]).Should().Equal(mode == MemoryDeliveryMode.Background ? [0xFF] : []);
        atB.Calls.Should().Be(mode == MemoryDeliveryMode.Background ? 1 : 0);
        network.Delivered.Should().Be(mode == MemoryDeliveryMode.Background ? 2 : 1);
        b.Port.Should().Be(0);
        a.Send([4], At(B, 0)).Should().BeFalse("port 0 is not a destination");
    }

    [Theory]
    [InlineData(MemoryDeliveryMode.Background)]
    [InlineData(MemoryDeliveryMode.Manual)]
    public void Close_from_inside_the_receiver_does_not_deadlock(MemoryDeliveryMode mode)
    {
        MemoryNetwork network = NewNetwork(mode);
        MemoryBind a = network.CreateBind(A);
        MemoryBind? b = null;
        var atB = new RecordingReceiver((_, in _) => b!.Close());
        b = network.CreateBind(B);
        a.Open(0, new RecordingReceiver());
        NetEndpoint destination = At(B, b.Open(0, atB));

        a.Send([1], destination);
        a.Send([2], destination);
        if (mode == MemoryDeliveryMode.Manual)
        {
            network.DeliverPending().Should().Be(1);
        }

        Received received = atB.Take();
        received.Data.Should().Equal(1);
        if (mode == MemoryDeliveryMode.Background)
        {
            received.Thread.Join(RecordingReceiver.Timeout).Should().BeTrue("the delivery thread ends after the receiver returns");
        }
        atB.ExpectNone(Quiet);
        b.Port.Should().Be(0);
        network.Dropped.Should().Be(1);
    }

    [Fact]
    public void Disposing_the_network_closes_its_binds()
    {
        var network = new MemoryNetwork();
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        var atB = new RecordingReceiver();
        a.Open(0, new RecordingReceiver());
        b.Open(0, atB);
        NetEndpoint destination = b.LocalEndpoint;

        network.Dispose();
        network.Dispose();

        a.Port.Should().Be(0);
        b.Port.Should().Be(0);
        a.Send("x"u8, destination).Should().BeFalse();
        a.Invoking(x => x.Open(0, new RecordingReceiver())).Should().Throw<ObjectDisposedException>();
        network.Invoking(n => n.CreateBind(C)).Should().Throw<ObjectDisposedException>();
        atB.ExpectNone(Quiet);
    }

    [Fact]
    public void A_disposed_bind_refuses_further_use()
    {
        MemoryNetwork network = NewNetwork(MemoryDeliveryMode.Manual);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        a.Open(0, new RecordingReceiver());
        b.Open(0, new RecordingReceiver());

        a.Dispose();
        a.Dispose();

        a.Send("x"u8, b.LocalEndpoint).Should().BeFalse();
        a.Invoking(x => x.Open(0, new RecordingReceiver())).Should().Throw<ObjectDisposedException>();
        network.Sent.Should().Be(0);
    }

    [Fact]
    public void Send_racing_with_reopen_close_and_dispose_never_throws()
    {
        MemoryNetwork network = NewNetwork(capacity: 64);
        MemoryBind a = network.CreateBind(A);
        MemoryBind b = network.CreateBind(B);
        b.Open(0, new RecordingReceiver());
        a.Open(0, new RecordingReceiver());
        NetEndpoint destination = b.LocalEndpoint;
        Exception? failure = null;
        var stop = new ManualResetEventSlim();
        Track(stop);
        Thread sender = RecordingReceiver.Run(() =>
        {
            try
            {
                while (!stop.IsSet)
                {
                    a.Send("r"u8, destination);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });

        for (int i = 0; i < 50; i++)
        {
            a.Open(0, new RecordingReceiver());
            b.Open(destination.Port, new RecordingReceiver());
            if (i % 5 == 0)
            {
                a.Close();
                b.Close();
            }
        }
        a.Dispose();
        stop.Set();

        sender.Join(RecordingReceiver.Timeout).Should().BeTrue();
        failure.Should().BeNull();
        b.Close();
        network.Sent.Should().BePositive();
        network.Sent.Should().Be(network.Delivered + network.Dropped, "every datagram is accounted for once b is closed");
    }

    [Fact]
    public void Misuse_is_rejected()
    {
        MemoryNetwork background = NewNetwork();
        background.Invoking(n => n.DeliverPending()).Should().Throw<InvalidOperationException>();
        background.Invoking(n => n.CreateBind(IPAddress.Any)).Should().Throw<ArgumentException>();
        background.Invoking(n => n.CreateBind(IPAddress.IPv6Any)).Should().Throw<ArgumentException>();
        NewNetwork(MemoryDeliveryMode.Manual).Invoking(n => n.DeliverPending(0)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => new MemoryNetwork(new MemoryNetworkOptions { QueueCapacity = 0 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName(nameof(MemoryNetworkOptions.QueueCapacity));
        FluentActions.Invoking(() => new MemoryNetwork(new MemoryNetworkOptions { Delivery = (MemoryDeliveryMode)7 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName(nameof(MemoryNetworkOptions.Delivery));
    }
}
