using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackPair;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>UDP between two stacks over a memory link: families, sizes, connected mode, queues, errors, lifetime.</summary>
[Trait("Category", "Unit")]
public sealed class UdpSocketTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly StackPair _pair = new();
    private readonly CancellationTokenSource _timeout = new(Patience);

    public void Dispose()
    {
        _pair.Dispose();
        _timeout.Dispose();
    }

    private static byte[] Data(int length, int seed = 1)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    private async Task<(byte[] Data, IPEndPoint From)> ReceiveAsync(UdpSocket socket, int size = 70_000)
    {
        var buffer = new byte[size];
        var result = await socket.ReceiveFromAsync(buffer, _timeout.Token);
        return (buffer[..result.ReceivedBytes], (IPEndPoint)result.RemoteEndPoint);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Datagrams_travel_both_ways(bool v6)
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BAddress(v6), 7000));
        using var client = _pair.A.BindUdp(new IPEndPoint(AAddress(v6), 0));

        (await client.SendToAsync(Data(100), server.LocalEndPoint, _timeout.Token)).Should().Be(100);
        var (data, from) = await ReceiveAsync(server);
        data.Should().Equal(Data(100));
        from.Should().Be(client.LocalEndPoint);

        await server.SendToAsync(Data(10, 2), from, _timeout.Token);
        var (reply, replyFrom) = await ReceiveAsync(client);
        reply.Should().Equal(Data(10, 2));
        replyFrom.Should().Be(new IPEndPoint(BAddress(v6), 7000));
        _pair.A.Counters.UdpDatagramsSent.Should().Be(1);
        _pair.B.Counters.UdpDatagramsReceived.Should().Be(1);
    }

    [Fact]
    public async Task A_dual_stack_socket_talks_to_both_families_and_reports_plain_IPv4()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 7000));
        using var client4 = _pair.A.BindUdp(new IPEndPoint(AV4, 5004));
        using var client6 = _pair.A.BindUdp(new IPEndPoint(AV6, 5006));
        server.LocalEndPoint.Should().Be(new IPEndPoint(IPAddress.IPv6Any, 7000));

        await client4.SendToAsync(Data(4), new IPEndPoint(BV4, 7000), _timeout.Token);
        var (_, from4) = await ReceiveAsync(server);
        from4.Should().Be(new IPEndPoint(AV4, 5004));
        from4.AddressFamily.Should().Be(AddressFamily.InterNetwork);

        await client6.SendToAsync(Data(6), new IPEndPoint(BV6, 7000), _timeout.Token);
        (await ReceiveAsync(server)).From.Should().Be(new IPEndPoint(AV6, 5006));

        await server.SendToAsync(Data(1), new IPEndPoint(AV4.MapToIPv6(), 5004), _timeout.Token); // IPv4-mapped accepted
        (await ReceiveAsync(client4)).From.Should().Be(new IPEndPoint(BV4, 7000));
        await server.SendToAsync(Data(1), from4, _timeout.Token);
        (await ReceiveAsync(client4)).Data.Should().Equal(Data(1));
    }

    [Fact]
    public async Task An_IPv4_wildcard_socket_receives_on_IPv4_only()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(IPAddress.Any, 7000));
        using var client = _pair.A.BindUdp(new IPEndPoint(AV6, 0));
        await client.SendToAsync(Data(1), new IPEndPoint(BV6, 7000), _timeout.Token);
        await Eventually(() => _pair.B.Counters[StackDropReason.UdpNoListener] == 1);
        var send = () => server.SendToAsync(Data(1), new IPEndPoint(AV6, 1), _timeout.Token).AsTask();
        (await send.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AddressFamilyNotSupported);
    }

    [Theory]
    [InlineData(false, UdpSocket.MaxIPv4Datagram)]
    [InlineData(true, UdpSocket.MaxIPv6Datagram)]
    [InlineData(false, 5000)]
    [InlineData(true, 5000)]
    public async Task Datagrams_larger_than_the_MTU_are_fragmented_and_reassembled(bool v6, int size)
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BAddress(v6), 7000));
        using var client = _pair.A.BindUdp(new IPEndPoint(AAddress(v6), 0));

        await client.SendToAsync(Data(size), server.LocalEndPoint, _timeout.Token);
        (await ReceiveAsync(server)).Data.Should().Equal(Data(size));
        _pair.A.Counters.DatagramsFragmented.Should().Be(1);
        _pair.B.Counters.DatagramsReassembled.Should().Be(1);
    }

    [Theory]
    [InlineData(false, UdpSocket.MaxIPv4Datagram + 1)]
    [InlineData(true, UdpSocket.MaxIPv6Datagram + 1)]
    public void A_datagram_over_the_maximum_is_refused(bool v6, int size)
    {
        using var client = _pair.A.BindUdp(new IPEndPoint(AAddress(v6), 0));
        var send = () => client.SendTo(new byte[size], new IPEndPoint(BAddress(v6), 7000));
        send.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.MessageSize);
    }

    [Fact]
    public async Task A_connected_socket_talks_only_to_its_peer()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        using var peer = _pair.A.BindUdp(new IPEndPoint(AV4, 5000));
        using var stranger = _pair.A.BindUdp(new IPEndPoint(AV4, 5001));
        server.Connect(new IPEndPoint(AV4, 5000));
        server.RemoteEndPoint.Should().Be(new IPEndPoint(AV4, 5000));

        await stranger.SendToAsync(Data(1), server.LocalEndPoint, _timeout.Token);
        await peer.SendToAsync(Data(2), server.LocalEndPoint, _timeout.Token);

        var buffer = new byte[100];
        (await server.ReceiveAsync(buffer, _timeout.Token)).Should().Be(2, "the stranger's datagram was refused");
        _pair.B.Counters[StackDropReason.UdpNoListener].Should().Be(1);

        (await server.SendAsync(Data(3), _timeout.Token)).Should().Be(3);
        (await ReceiveAsync(peer)).Data.Should().Equal(Data(3));
        // The stranger was told the port is unreachable; an unconnected socket does not report it.
        await Eventually(() => _pair.A.Counters.IcmpErrorsReceived == 1);
        await stranger.SendToAsync(Data(1), new IPEndPoint(BV4, 9), _timeout.Token);
    }

    [Fact]
    public async Task Connecting_drops_queued_datagrams_from_others()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        using var peer = _pair.A.BindUdp(new IPEndPoint(AV4, 5000));
        using var other = _pair.A.BindUdp(new IPEndPoint(AV4, 5001));
        await other.SendToAsync(Data(1), server.LocalEndPoint, _timeout.Token);
        await peer.SendToAsync(Data(2), server.LocalEndPoint, _timeout.Token);
        await Eventually(() => _pair.B.Counters.UdpDatagramsReceived == 2);

        server.Connect(peer.LocalEndPoint);
        (await ReceiveAsync(server)).Data.Should().Equal(Data(2));
    }

    [Fact]
    public async Task A_connected_socket_learns_that_its_peer_is_unreachable()
    {
        using var socket = _pair.B.BindUdp(new IPEndPoint(BV6, 0));
        socket.Connect(new IPEndPoint(AV6, 9)); // nobody there
        var receive = socket.ReceiveAsync(new byte[10], _timeout.Token).AsTask();
        await socket.SendAsync(Data(5), _timeout.Token);

        (await receive.Awaiting(task => task).Should().ThrowAsync<SocketException>())
            .Which.SocketErrorCode.Should().Be(SocketError.ConnectionRefused);

        await socket.SendAsync(Data(5), _timeout.Token);
        await Eventually(() => _pair.B.Counters.IcmpErrorsReceived == 2);
        var next = () => socket.ReceiveAsync(new byte[10], _timeout.Token).AsTask();
        (await next.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.ConnectionRefused,
            "an error with no receive waiting is reported by the next call");
    }

    [Fact]
    public void Send_without_connect_fails()
    {
        using var socket = _pair.A.BindUdp(new IPEndPoint(AV4, 0));
        var send = () => socket.Send(Data(1));
        send.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.NotConnected);
        socket.RemoteEndPoint.Should().BeNull();
    }

    [Theory]
    [InlineData("10.0.0.2", 0, SocketError.AddressNotAvailable)]
    [InlineData("224.0.0.1", 7, SocketError.AddressNotAvailable)]
    [InlineData("255.255.255.255", 7, SocketError.AddressNotAvailable)]
    [InlineData("0.0.0.0", 7, SocketError.AddressNotAvailable)]
    [InlineData("10.0.0.1", 7, SocketError.AddressNotAvailable)] // our own address: no loopback
    [InlineData("fd00::2", 7, SocketError.AddressFamilyNotSupported)]
    public void Unusable_destinations_are_refused(string address, int port, SocketError expected)
    {
        using var socket = _pair.A.BindUdp(new IPEndPoint(AV4, 0));
        var send = () => socket.SendTo(Data(1), new IPEndPoint(IPAddress.Parse(address), port));
        send.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(expected);
        var connect = () => socket.Connect(new IPEndPoint(IPAddress.Parse(address), port));
        connect.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(expected);
    }

    [Fact]
    public void A_family_the_stack_has_no_address_of_is_unreachable()
    {
        using var pair = new StackPair(withIPv6: false);
        using var socket = pair.A.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 0));
        var send = () => socket.SendTo(Data(1), new IPEndPoint(BV6, 7));
        send.Should().Throw<SocketException>().Which.SocketErrorCode.Should().Be(SocketError.NetworkUnreachable);
    }

    [Fact]
    public void Binding_follows_the_overlap_rules()
    {
        static SocketError Error(Action bind)
        {
            try
            {
                bind();
                return SocketError.Success;
            }
            catch (SocketException e)
            {
                return e.SocketErrorCode;
            }
        }

        var stack = _pair.A;
        using var specific = stack.BindUdp(new IPEndPoint(AV4, 7000));
        Error(() => stack.BindUdp(new IPEndPoint(AV4, 7000))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(IPAddress.Any, 7000))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 7000))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(AV4.MapToIPv6(), 7000))).Should().Be(SocketError.AddressAlreadyInUse);
        using (stack.BindUdp(new IPEndPoint(AV6, 7000)))
        {
        }

        using var any4 = stack.BindUdp(new IPEndPoint(IPAddress.Any, 7001));
        Error(() => stack.BindUdp(new IPEndPoint(AV4, 7001))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 7001))).Should().Be(SocketError.AddressAlreadyInUse);
        using var v6OnSamePort = stack.BindUdp(new IPEndPoint(AV6, 7001));

        using var dual = stack.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 7002));
        Error(() => stack.BindUdp(new IPEndPoint(AV4, 7002))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(AV6, 7002))).Should().Be(SocketError.AddressAlreadyInUse);
        Error(() => stack.BindUdp(new IPEndPoint(IPAddress.Any, 7002))).Should().Be(SocketError.AddressAlreadyInUse);

        Error(() => stack.BindUdp(new IPEndPoint(BV4, 7003))).Should().Be(SocketError.AddressNotAvailable);
        Error(() => stack.BindUdp(new IPEndPoint(IPAddress.Parse("224.0.0.1"), 7003))).Should().Be(SocketError.AddressNotAvailable);

        specific.Dispose();
        using var again = stack.BindUdp(new IPEndPoint(AV4, 7000));
        again.LocalEndPoint.Should().Be(new IPEndPoint(AV4, 7000));
    }

    [Fact]
    public void Port_zero_picks_distinct_ephemeral_ports()
    {
        var sockets = Enumerable.Range(0, 50).Select(_ => _pair.A.BindUdp(new IPEndPoint(IPAddress.IPv6Any, 0))).ToList();
        sockets.Select(socket => socket.LocalEndPoint.Port).Should().OnlyContain(port => port >= 49152 && port <= 65535)
            .And.OnlyHaveUniqueItems();
        sockets.ForEach(socket => socket.Dispose());
    }

    [Fact]
    public async Task A_receive_is_cancelled_by_its_token()
    {
        using var socket = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        using var cancel = new CancellationTokenSource();
        var receive = socket.ReceiveFromAsync(new byte[10], cancel.Token).AsTask();
        receive.IsCompleted.Should().BeFalse();
        cancel.Cancel();
        await receive.Awaiting(task => task).Should().ThrowAsync<OperationCanceledException>();

        var already = () => socket.ReceiveAsync(new byte[10], cancel.Token).AsTask();
        await already.Should().ThrowAsync<OperationCanceledException>();
        var send = () => socket.SendToAsync(Data(1), new IPEndPoint(AV4, 7), cancel.Token).AsTask();
        await send.Should().ThrowAsync<OperationCanceledException>();

        // The socket still works, and the cancelled receive took no datagram.
        using var client = _pair.A.BindUdp(new IPEndPoint(AV4, 0));
        await client.SendToAsync(Data(3), socket.LocalEndPoint, _timeout.Token);
        (await ReceiveAsync(socket)).Data.Should().Equal(Data(3));
    }

    [Fact]
    public async Task Disposing_a_socket_fails_pending_and_later_calls()
    {
        var socket = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        var first = socket.ReceiveFromAsync(new byte[10], _timeout.Token).AsTask();
        var second = socket.ReceiveAsync(new byte[10], _timeout.Token).AsTask();

        socket.Dispose();
        await first.Awaiting(task => task).Should().ThrowAsync<ObjectDisposedException>();
        await second.Awaiting(task => task).Should().ThrowAsync<ObjectDisposedException>();
        var receive = () => socket.ReceiveFromAsync(new byte[10]).AsTask();
        await receive.Should().ThrowAsync<ObjectDisposedException>();
        var send = () => socket.SendTo(Data(1), new IPEndPoint(AV4, 7));
        send.Should().Throw<ObjectDisposedException>();
        socket.Dispose();
        await socket.DisposeAsync();

        using var again = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
    }

    [Fact]
    public async Task Disposing_the_stack_closes_its_sockets()
    {
        var socket = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        var receive = socket.ReceiveFromAsync(new byte[10], _timeout.Token).AsTask();
        await _pair.B.DisposeAsync();
        await receive.Awaiting(task => task).Should().ThrowAsync<ObjectDisposedException>();
        var bind = () => _pair.B.BindUdp(new IPEndPoint(BV4, 7001));
        bind.Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public async Task Pending_receives_complete_in_call_order()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        using var client = _pair.A.BindUdp(new IPEndPoint(AV4, 0));
        var buffers = Enumerable.Range(0, 3).Select(_ => new byte[10]).ToArray();
        var receives = buffers.Select(buffer => server.ReceiveFromAsync(buffer, _timeout.Token).AsTask()).ToArray();
        for (int i = 0; i < 3; i++)
        {
            await client.SendToAsync(new[] { (byte)i }, server.LocalEndPoint, _timeout.Token);
        }
        await Task.WhenAll(receives);
        buffers.Select(buffer => buffer[0]).Should().Equal(0, 1, 2);
    }

    [Fact]
    public async Task A_buffer_too_small_gets_the_start_and_a_message_size_error()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BV4, 7000));
        using var client = _pair.A.BindUdp(new IPEndPoint(AV4, 0));
        var pendingBuffer = new byte[4];
        var pending = server.ReceiveFromAsync(pendingBuffer, _timeout.Token).AsTask();
        await client.SendToAsync(Data(10), server.LocalEndPoint, _timeout.Token);
        (await pending.Awaiting(task => task).Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.MessageSize);
        pendingBuffer.Should().Equal(Data(10)[..4]);

        await client.SendToAsync(Data(10, 2), server.LocalEndPoint, _timeout.Token);
        await client.SendToAsync(Data(3, 3), server.LocalEndPoint, _timeout.Token);
        await Eventually(() => _pair.B.Counters.UdpDatagramsReceived == 3);
        var queuedBuffer = new byte[4];
        var queued = () => server.ReceiveAsync(queuedBuffer, _timeout.Token).AsTask();
        (await queued.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.MessageSize);
        queuedBuffer.Should().Equal(Data(10, 2)[..4]);
        (await ReceiveAsync(server)).Data.Should().Equal(Data(3, 3), "the truncated datagram was consumed");
    }

    [Fact]
    public async Task Threads_can_send_and_receive_concurrently()
    {
        using var server = _pair.B.BindUdp(new IPEndPoint(BV6, 7000));
        server.ReceiveQueueCapacity = 10_000;
        server.ReceiveBufferSize = 64 << 20;
        const int Senders = 4;
        const int PerSender = 500;
        var clients = Enumerable.Range(0, Senders).Select(_ => _pair.A.BindUdp(new IPEndPoint(AV6, 0))).ToList();
        var sends = clients.Select(client => Task.Run(async () =>
        {
            for (int i = 0; i < PerSender; i++)
            {
                await client.SendToAsync(BitConverter.GetBytes(i), server.LocalEndPoint, _timeout.Token);
            }
        }));
        var lastSeen = new Dictionary<int, int>();
        var receiving = Task.Run(async () =>
        {
            for (int n = 0; n < Senders * PerSender; n++)
            {
                var (data, from) = await ReceiveAsync(server, 10);
                int value = BitConverter.ToInt32(data);
                lastSeen.TryGetValue(from.Port, out int last);
                value.Should().Be(lastSeen.ContainsKey(from.Port) ? last + 1 : 0, "the link keeps each sender's order");
                lastSeen[from.Port] = value;
            }
        });
        await Task.WhenAll(sends);
        await receiving;
        lastSeen.Values.Should().OnlyContain(value => value == PerSender - 1);
        clients.ForEach(client => client.Dispose());
    }

    private async Task Eventually(Func<bool> condition)
    {
        while (!condition())
        {
            _timeout.Token.ThrowIfCancellationRequested();
            await Task.Delay(5);
        }
    }
}
