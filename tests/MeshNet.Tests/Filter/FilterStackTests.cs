using System.Net;
using System.Net.Sockets;
using MeshNet.Filter;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Filter.FilterTestData;

namespace MeshNet.Tests.Filter;

/// <summary>
/// Two real stacks over a manual <see cref="MemoryLink"/>, each with the node's real
/// <see cref="PacketFilter"/>: A (100.64.0.1, fd7a:115c:a1e0::1) and B (100.64.0.2, fd7a:115c:a1e0::2).
/// Time is fake and packets move only when the test delivers them, so "at once" means "without
/// any time passing".
/// </summary>
[Trait("Category", "Unit")]
public sealed class FilterStackTests : IDisposable
{
    private static readonly IPAddress AV4 = IPAddress.Parse("100.64.0.1");
    private static readonly IPAddress BV4 = IPAddress.Parse("100.64.0.2");
    private static readonly IPAddress AV6 = IPAddress.Parse("fd7a:115c:a1e0::1");
    private static readonly IPAddress BV6 = IPAddress.Parse("fd7a:115c:a1e0::2");

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly MemoryLink _link = new(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
    private readonly PacketFilter _filterA;
    private readonly PacketFilter _filterB;
    private readonly IpStack _a;
    private readonly IpStack _b;

    public FilterStackTests()
    {
        _filterA = new PacketFilter(_time, NullLogger.Instance);
        _filterB = new PacketFilter(_time, NullLogger.Instance);
        _a = IpStack.Create(new IpStackOptions { Link = _link.A, Addresses = [AV4, AV6], TimeProvider = _time, InboundFilter = _filterA });
        _b = IpStack.Create(new IpStackOptions { Link = _link.B, Addresses = [BV4, BV6], TimeProvider = _time, InboundFilter = _filterB });
        _link.A.Receiver = _a;
        _link.B.Receiver = _b;
        // A admits nothing; B admits A on TCP and UDP port 80 only.
        _filterA.Update(NoChunks, enforced: true, policyVersion: 1);
        _filterB.Update(Chunks(Rule(["100.64.0.1/32", "fd7a:115c:a1e0::1/128"], [("*", 80, 80)], Tcp, Udp)), enforced: true, policyVersion: 1);
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        _link.Dispose();
        _filterA.Dispose();
        _filterB.Dispose();
    }

    private void DeliverAll()
    {
        for (int i = 0; i < 100 && _link.DeliverPending() > 0; i++)
        {
        }
    }

    /// <summary>Delivers packets (application continuations run on the thread pool) until the task completes; fake time never moves.</summary>
    private async Task<T> Complete<T>(Task<T> task)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!task.IsCompleted && DateTime.UtcNow < deadline)
        {
            DeliverAll();
            await Task.Delay(1);
        }
        return await task;
    }

    /// <summary>Delivers packets until <paramref name="condition"/> holds (without moving fake time).</summary>
    private async Task DeliverUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the condition should hold once the packets are delivered");
            DeliverAll();
            await Task.Delay(1);
        }
    }

    private static IPAddress B(bool v6) => v6 ? BV6 : BV4;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_connect_to_a_port_the_policy_denies_fails_at_once_with_AccessDenied(bool v6)
    {
        using var listener = _b.ListenTcp(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 8080));
        var start = _time.GetUtcNow();
        var connect = _a.ConnectTcpAsync(new IPEndPoint(B(v6), 8080)).AsTask();

        var act = () => Complete(connect);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AccessDenied);
        _b.Counters[StackDropReason.FilterDenied].Should().Be(1);
        _b.Counters.IcmpErrorsSent.Should().Be(1);
        _filterB.Denied(MeshPolicyDenialReason.NoRule).Should().Be(1);
        _filterA.TotalDenied.Should().Be(0, "A's deny-all filter admits the error: it quotes A's own SYN");
        _time.GetUtcNow().Should().Be(start, "no retransmission timer had to fire");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_connect_to_an_allowed_port_works_and_its_replies_pass_As_deny_all_filter(bool v6)
    {
        using var listener = _b.ListenTcp(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 80));
        using var client = await Complete(_a.ConnectTcpAsync(new IPEndPoint(B(v6), 80)).AsTask());
        using var server = await Complete(listener.AcceptAsync().AsTask());

        await client.Output.WriteAsync("hello"u8.ToArray());
        var read = await Complete(server.Input.ReadAsync().AsTask());
        System.Buffers.BuffersExtensions.ToArray(read.Buffer).Should().Equal("hello"u8.ToArray());
        server.Input.AdvanceTo(read.Buffer.End);

        await server.Output.WriteAsync("world"u8.ToArray());
        var reply = await Complete(client.Input.ReadAsync().AsTask());
        System.Buffers.BuffersExtensions.ToArray(reply.Buffer).Should().Equal("world"u8.ToArray());
        client.Input.AdvanceTo(reply.Buffer.End);

        _filterA.TotalDenied.Should().Be(0);
        _filterB.TotalDenied.Should().Be(0);
    }

    [Fact]
    public async Task B_cannot_connect_to_A_whose_policy_admits_nothing()
    {
        using var listener = _a.ListenTcp(new IPEndPoint(IPAddress.Any, 80));
        var connect = _b.ConnectTcpAsync(new IPEndPoint(AV4, 80)).AsTask();
        var act = () => Complete(connect);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AccessDenied);
    }

    [Fact]
    public async Task A_connected_UDP_socket_learns_that_the_policy_denies_its_datagrams()
    {
        using var server = _b.BindUdp(new IPEndPoint(IPAddress.Any, 53));
        using var client = _a.BindUdp(new IPEndPoint(IPAddress.Any, 0));
        client.Connect(new IPEndPoint(BV4, 53));
        client.Send("query"u8);
        DeliverAll();

        var receive = client.ReceiveAsync(new byte[100]).AsTask();
        var act = () => Complete(receive);
        (await act.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.AccessDenied);
        _b.Counters.UdpDatagramsReceived.Should().Be(0);
    }

    [Fact]
    public async Task UDP_to_an_allowed_port_is_answered_through_As_deny_all_filter()
    {
        using var server = _b.BindUdp(new IPEndPoint(IPAddress.Any, 80));
        using var client = _a.BindUdp(new IPEndPoint(IPAddress.Any, 0));
        client.SendTo("ping"u8, new IPEndPoint(BV4, 80));
        DeliverAll();
        var buffer = new byte[100];
        var request = await Complete(server.ReceiveFromAsync(buffer).AsTask());
        server.SendTo(buffer.AsSpan(0, request.ReceivedBytes), (IPEndPoint)request.RemoteEndPoint);
        var received = await Complete(client.ReceiveFromAsync(buffer).AsTask());
        received.ReceivedBytes.Should().Be(4);
        _filterA.TotalDenied.Should().Be(0);
    }

    [Fact]
    public async Task Revoking_the_rule_cuts_an_inbound_connection_already_open()
    {
        using var listener = _b.ListenTcp(new IPEndPoint(IPAddress.Any, 80));
        using var client = await Complete(_a.ConnectTcpAsync(new IPEndPoint(BV4, 80)).AsTask());
        using var server = await Complete(listener.AcceptAsync().AsTask());

        _filterB.Update(NoChunks, enforced: true, policyVersion: 2);
        await client.Output.WriteAsync("after"u8.ToArray());
        await DeliverUntil(() => _filterB.Denied(MeshPolicyDenialReason.NoRule) > 0);

        server.Input.TryRead(out _).Should().BeFalse("B's filter drops the data of a flow A opened once the rule is gone");
        _filterB.Denied(MeshPolicyDenialReason.NoRule).Should().BeGreaterThan(0);
        _b.Counters.IcmpErrorsSent.Should().Be(0, "only connection requests and UDP are answered with an ICMP error");
    }

    [Fact]
    public async Task Without_enforcement_everything_is_admitted()
    {
        _filterB.Update(NoChunks, enforced: false, policyVersion: 0);
        using var listener = _b.ListenTcp(new IPEndPoint(IPAddress.Any, 8080));
        using var client = await Complete(_a.ConnectTcpAsync(new IPEndPoint(BV4, 8080)).AsTask());
        _filterB.TotalDenied.Should().Be(0);
    }
}
