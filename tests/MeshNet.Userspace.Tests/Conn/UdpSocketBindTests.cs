using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Conn;
using Microsoft.Extensions.Logging;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.Tests.Conn;

[Trait("Category", "Unit")]
public sealed class UdpSocketBindTests : IDisposable
{
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private readonly List<IDisposable> _cleanup = [];

    public void Dispose()
    {
        for (int i = _cleanup.Count - 1; i >= 0; i--)
        {
            _cleanup[i].Dispose();
        }
    }

    private UdpSocketBind NewBind(IPAddress? address, ILogger? logger = null)
    {
        var bind = new UdpSocketBind(new UdpSocketBindOptions { BindAddress = address, Logger = logger });
        _cleanup.Add(bind);
        return bind;
    }

    private Socket NewPeer(IPAddress address)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 10_000 };
        socket.Bind(new IPEndPoint(address, 0));
        _cleanup.Add(socket);
        return socket;
    }

    private static NetEndpoint EndpointOf(Socket socket) => NetEndpoint.FromIPEndPoint((IPEndPoint)socket.LocalEndPoint!);

    private static NetEndpoint At(IPAddress address, ushort port) => NetEndpoint.FromIPEndPoint(new IPEndPoint(address, port));

    private static (byte[] Data, IPEndPoint From) ReceiveOn(Socket peer)
    {
        var buffer = new byte[70_000];
        EndPoint from = new IPEndPoint(peer.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
        int length = peer.ReceiveFrom(buffer, ref from); // Throws on the 10 s ReceiveTimeout.
        return (buffer[..length], (IPEndPoint)from);
    }

    [Fact]
    public void Open_with_port_zero_binds_a_real_port()
    {
        var bind = NewBind(IPAddress.Loopback);
        bind.Port.Should().Be(0, "a new bind is closed");

        ushort port = bind.Open(0, new RecordingReceiver());

        port.Should().NotBe(0);
        bind.Port.Should().Be(port);
        using var clash = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        clash.Invoking(s => s.Bind(new IPEndPoint(IPAddress.Loopback, port)))
            .Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.AddressAlreadyInUse);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Datagrams_round_trip_between_binds_with_correct_source(string addressText)
    {
        Socket.OSSupportsIPv6.Should().BeTrue("IPv6 loopback is available on the test machines");
        IPAddress address = IPAddress.Parse(addressText);
        var receiverA = new RecordingReceiver();
        var receiverB = new RecordingReceiver();
        var a = NewBind(address);
        var b = NewBind(address);
        ushort portA = a.Open(0, receiverA);
        ushort portB = b.Open(0, receiverB);

        a.Send("ping"u8, At(address, portB)).Should().BeTrue();
        Received atB = receiverB.Take();
        atB.Data.Should().Equal("ping"u8.ToArray());
        atB.Source.Should().Be(At(address, portA));
        atB.Source.IsIPv4.Should().Be(address.AddressFamily == AddressFamily.InterNetwork);

        b.Send("pong"u8, atB.Source).Should().BeTrue();
        Received atA = receiverA.Take();
        atA.Data.Should().Equal("pong"u8.ToArray());
        atA.Source.Should().Be(At(address, portB));
    }

    [Fact]
    public void Receive_thread_is_named_after_the_port()
    {
        var receiver = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo("x"u8, new IPEndPoint(IPAddress.Loopback, port));

        Received received = receiver.Take();
        received.Thread.Name.Should().Be($"MeshNet UDP :{port}");
        received.Thread.IsBackground.Should().BeTrue();
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Dual_stack_bind_reaches_both_families_and_reports_plain_sources(string peerAddressText)
    {
        IPAddress peerAddress = IPAddress.Parse(peerAddressText);
        var receiver = new RecordingReceiver();
        var bind = NewBind(null); // Default: IPv6Any, dual mode.
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(peerAddress);

        peer.SendTo("hello"u8, new IPEndPoint(peerAddress, port));

        Received received = receiver.Take();
        received.Data.Should().Equal("hello"u8.ToArray());
        received.Source.Should().Be(EndpointOf(peer));
        received.Source.IsIPv4.Should().Be(peerAddress.AddressFamily == AddressFamily.InterNetwork);
        received.Source.ToIPEndPoint().Address.Should().Be(peerAddress, "an IPv4 peer is reported as IPv4, not as a mapped IPv6 address");

        bind.Send("reply"u8, received.Source).Should().BeTrue("an IPv4 destination goes out in mapped form");
        var (data, from) = ReceiveOn(peer);
        data.Should().Equal("reply"u8.ToArray());
        from.Port.Should().Be(port);
    }

    [Fact]
    public void Largest_and_empty_datagrams_are_received_whole()
    {
        var receiver = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);
        var largest = new byte[65_507]; // The largest IPv4 UDP payload.
        Random.Shared.NextBytes(largest);

        peer.SendTo(largest, new IPEndPoint(IPAddress.Loopback, port));
        peer.SendTo([], new IPEndPoint(IPAddress.Loopback, port));

        receiver.Take().Data.Should().Equal(largest);
        receiver.Take().Data.Should().BeEmpty("an empty datagram is a datagram, not a closed socket");
        bind.Send(largest, EndpointOf(peer)).Should().BeTrue();
        ReceiveOn(peer).Data.Should().Equal(largest);
    }

    [Fact]
    public void Reopening_on_a_new_port_moves_traffic()
    {
        var first = new RecordingReceiver();
        var second = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback);
        Socket peer = NewPeer(IPAddress.Loopback);
        ushort oldPort = bind.Open(0, first);

        ushort newPort = bind.Open(0, second);
        for (int attempt = 0; newPort == oldPort && attempt < 10; attempt++)
        {
            newPort = bind.Open(0, second); // The OS may hand the freed port out again.
        }

        newPort.Should().NotBe(oldPort);
        bind.Port.Should().Be(newPort);
        peer.SendTo("old"u8, new IPEndPoint(IPAddress.Loopback, oldPort));
        peer.SendTo("new"u8, new IPEndPoint(IPAddress.Loopback, newPort));
        second.Take().Data.Should().Equal("new"u8.ToArray());
        second.ExpectNone(Quiet);
        first.ExpectNone(TimeSpan.Zero);

        bind.Send("from new"u8, EndpointOf(peer)).Should().BeTrue();
        ReceiveOn(peer).From.Port.Should().Be(newPort, "sends leave from the new port");
    }

    [Fact]
    public void Reopening_on_the_same_port_works()
    {
        var receiver = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);

        bind.Open(port, receiver).Should().Be(port);

        Socket peer = NewPeer(IPAddress.Loopback);
        peer.SendTo("again"u8, new IPEndPoint(IPAddress.Loopback, port));
        receiver.Take().Data.Should().Equal("again"u8.ToArray());
    }

    [Fact]
    public void Close_waits_for_the_receiver_and_stops_callbacks()
    {
        using var inReceiver = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var receiver = new RecordingReceiver((_, in _) =>
        {
            inReceiver.Set();
            release.Wait(RecordingReceiver.Timeout);
        });
        var bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);
        peer.SendTo("1"u8, new IPEndPoint(IPAddress.Loopback, port));
        inReceiver.Wait(RecordingReceiver.Timeout).Should().BeTrue();

        Thread close = RecordingReceiver.Run(bind.Close);

        close.Join(Quiet).Should().BeFalse("Close waits for the receiver call in progress");
        bind.Port.Should().Be(0);
        release.Set();
        close.Join(RecordingReceiver.Timeout).Should().BeTrue("Close returns once the receiver has returned");
        Received received = receiver.Take();
        received.Thread.IsAlive.Should().BeFalse("Close joins the receive thread");
        bind.Send("x"u8, EndpointOf(peer)).Should().BeFalse("a closed bind does not send");
        peer.SendTo("2"u8, new IPEndPoint(IPAddress.Loopback, port));
        receiver.ExpectNone(Quiet);
        receiver.Calls.Should().Be(1);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void Closing_the_socket_aborts_the_blocked_receive(string? addressText)
    {
        var logger = new ListLogger();
        var bind = NewBind(addressText is null ? null : IPAddress.Parse(addressText), logger);
        bind.Open(0, new RecordingReceiver());

        bind.Close();

        bind.Port.Should().Be(0);
        logger.Entries.Select(e => e.Id.Id).Should().Contain(2102, "the bind logs that it closed")
            .And.NotContain(2107, "on Linux, disposing the socket wakes the receive thread without help");
        bind.Close(); // Idempotent.
    }

    [Fact]
    public void Close_from_inside_the_receiver_does_not_deadlock()
    {
        UdpSocketBind? bind = null;
        var receiver = new RecordingReceiver((_, in _) => bind!.Close());
        bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo("close"u8, new IPEndPoint(IPAddress.Loopback, port));

        Received received = receiver.Take();
        bind.Port.Should().Be(0);
        received.Thread.Join(RecordingReceiver.Timeout).Should().BeTrue("the receive thread ends once the receiver returns");
        peer.SendTo("after"u8, new IPEndPoint(IPAddress.Loopback, port));
        receiver.ExpectNone(Quiet);
    }

    [Fact]
    public void Open_from_inside_the_receiver_moves_to_the_new_port()
    {
        var second = new RecordingReceiver();
        UdpSocketBind? bind = null;
        int newPort = 0;
        var first = new RecordingReceiver((_, in _) => Volatile.Write(ref newPort, bind!.Open(0, second)));
        bind = NewBind(IPAddress.Loopback);
        ushort oldPort = bind.Open(0, first);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo("move"u8, new IPEndPoint(IPAddress.Loopback, oldPort));
        Received received = first.Take();

        received.Thread.Join(RecordingReceiver.Timeout).Should().BeTrue("the old receive thread ends");
        bind.Port.Should().Be((ushort)Volatile.Read(ref newPort));
        peer.SendTo("moved"u8, new IPEndPoint(IPAddress.Loopback, bind.Port));
        second.Take().Data.Should().Equal("moved"u8.ToArray());
    }

    [Fact]
    public void A_throwing_receiver_is_logged_and_receiving_continues()
    {
        var logger = new ListLogger();
        var receiver = new RecordingReceiver((datagram, in _) =>
        {
            if (datagram[0] == 0xFF)
            {
                throw new InvalidOperationException("receiver bug");
            }
        });
        var bind = NewBind(IPAddress.Loopback, logger);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo(new byte[] { 0xFF }, new IPEndPoint(IPAddress.Loopback, port));
        peer.SendTo(new byte[] { 0x01 }, new IPEndPoint(IPAddress.Loopback, port));

        receiver.Take().Data.Should().Equal(0x01);
        logger.Entries.Should().ContainSingle(e => e.Id.Id == 2103)
            .Which.Exception.Should().BeOfType<InvalidOperationException>();
    }

    [Fact]
    public void Sends_from_many_threads_reach_their_own_destinations()
    {
        const int Threads = 4, RoundTrips = 200;
        var echoes = new UdpSocketBind[Threads];
        for (int i = 0; i < Threads; i++)
        {
            UdpSocketBind echo = echoes[i] = NewBind(IPAddress.Loopback);
            echo.Open(0, new RecordingReceiver((datagram, in source) => echo.Send(datagram, source)));
        }
        var replies = new SemaphoreSlim[Threads];
        for (int i = 0; i < Threads; i++)
        {
            replies[i] = new SemaphoreSlim(0);
            _cleanup.Add(replies[i]);
        }
        var mismatches = 0;
        var client = NewBind(IPAddress.Loopback);
        client.Open(0, new RecordingReceiver((datagram, in source) =>
        {
            int thread = datagram[0];
            if (thread >= Threads || source.Port != echoes[thread].Port)
            {
                Interlocked.Increment(ref mismatches);
                return;
            }
            replies[thread].Release();
        }));

        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, thread =>
        {
            NetEndpoint destination = At(IPAddress.Loopback, echoes[thread].Port);
            Span<byte> payload = stackalloc byte[32];
            for (int i = 0; i < RoundTrips; i++)
            {
                payload[0] = (byte)thread;
                BitConverter.TryWriteBytes(payload[1..], i);
                client.Send(payload, destination).Should().BeTrue();
                replies[thread].Wait(RecordingReceiver.Timeout).Should().BeTrue("every echo returns");
            }
        });

        mismatches.Should().Be(0, "each echo came back from the bind it was sent to");
    }

    [Fact]
    public void Send_racing_with_reopen_close_and_dispose_never_throws()
    {
        var bind = NewBind(IPAddress.Loopback);
        Socket peer = NewPeer(IPAddress.Loopback);
        NetEndpoint destination = EndpointOf(peer);
        bind.Open(0, new RecordingReceiver());
        Exception? failure = null;
        int sent = 0;
        var stop = new ManualResetEventSlim();
        _cleanup.Add(stop);
        Thread sender = RecordingReceiver.Run(() =>
        {
            try
            {
                while (!stop.IsSet)
                {
                    if (bind.Send("r"u8, destination))
                    {
                        sent++;
                    }
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });

        for (int i = 0; i < 20; i++)
        {
            bind.Open(0, new RecordingReceiver());
            Thread.Sleep(1);
            if (i % 5 == 0)
            {
                bind.Close();
            }
        }
        bind.Dispose();
        Thread.Sleep(10);
        stop.Set();

        sender.Join(RecordingReceiver.Timeout).Should().BeTrue();
        failure.Should().BeNull();
        sent.Should().BePositive();
    }

    [Fact]
    public void Send_returns_false_for_unreachable_families_and_empty_endpoints()
    {
        var v4 = NewBind(IPAddress.Loopback);
        var v6 = NewBind(IPAddress.IPv6Loopback);
        v4.Open(0, new RecordingReceiver());
        v6.Open(0, new RecordingReceiver());

        v4.Send("x"u8, At(IPAddress.IPv6Loopback, 9)).Should().BeFalse("an IPv4 socket cannot reach IPv6");
        v6.Send("x"u8, At(IPAddress.Loopback, 9)).Should().BeFalse("an IPv6-only socket cannot reach IPv4");
        v4.Send("x"u8, default).Should().BeFalse();
        v4.Send("x"u8, At(IPAddress.Loopback, 0)).Should().BeFalse();
        v4.Send(new byte[70_000], At(IPAddress.Loopback, 9)).Should().BeFalse("too large for UDP");
    }

    [Fact]
    public void Opening_a_port_in_use_throws_and_leaves_the_bind_closed()
    {
        Socket holder = NewPeer(IPAddress.Loopback);
        var port = (ushort)((IPEndPoint)holder.LocalEndPoint!).Port;
        var bind = NewBind(IPAddress.Loopback);
        bind.Open(0, new RecordingReceiver());

        bind.Invoking(b => b.Open(port, new RecordingReceiver()))
            .Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.AddressAlreadyInUse);

        bind.Port.Should().Be(0);
        bind.Open(0, new RecordingReceiver()).Should().NotBe(0, "the bind is still usable");
    }

    [Fact]
    public void Dispose_closes_is_idempotent_and_refuses_further_use()
    {
        var receiver = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback);
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        bind.Dispose();
        bind.Dispose();

        bind.Port.Should().Be(0);
        bind.Send("x"u8, EndpointOf(peer)).Should().BeFalse();
        bind.Invoking(b => b.Open(0, receiver)).Should().Throw<ObjectDisposedException>();
        peer.SendTo("x"u8, new IPEndPoint(IPAddress.Loopback, port));
        receiver.ExpectNone(Quiet);
    }

    [Fact]
    public void Send_on_a_never_opened_bind_returns_false()
    {
        var bind = NewBind(IPAddress.Loopback);

        bind.Send("x"u8, At(IPAddress.Loopback, 9)).Should().BeFalse();
        bind.Close();
    }

    [Fact]
    public void Invalid_options_are_rejected_naming_the_property()
    {
        FluentActions.Invoking(() => new UdpSocketBind(new UdpSocketBindOptions { SocketBufferSize = -1 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName(nameof(UdpSocketBindOptions.SocketBufferSize));
        FluentActions.Invoking(() => new UdpSocketBind(new UdpSocketBindOptions { SocketBufferSize = int.MaxValue }))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName(nameof(UdpSocketBindOptions.SocketBufferSize));
    }

    [Fact]
    public void An_IPv4_mapped_bind_address_binds_IPv4()
    {
        var receiver = new RecordingReceiver();
        var bind = NewBind(IPAddress.Loopback.MapToIPv6());
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo("m"u8, new IPEndPoint(IPAddress.Loopback, port));

        receiver.Take().Source.Should().Be(EndpointOf(peer));
    }

    [Fact]
    public void Zero_buffer_size_keeps_system_defaults()
    {
        var bind = new UdpSocketBind(new UdpSocketBindOptions { BindAddress = IPAddress.Loopback, SocketBufferSize = 0 });
        _cleanup.Add(bind);
        var receiver = new RecordingReceiver();
        ushort port = bind.Open(0, receiver);
        Socket peer = NewPeer(IPAddress.Loopback);

        peer.SendTo("d"u8, new IPEndPoint(IPAddress.Loopback, port));

        receiver.Take().Data.Should().Equal("d"u8.ToArray());
    }
}
