using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.TestSupport.Interop;
using MeshNet.Userspace.Stack;
using Xunit.Abstractions;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// MeshNet's TCP/IP stack behind its WireGuard device against the Linux kernel behind
/// wireguard-go (issue 3, <c>Category=TcpInterop</c>): connection set-up both ways over IPv4 and
/// IPv6 (item 1), 256 MiB each way verified by SHA-256 (2), a zero window held for 10 s (5),
/// resets both ways (6) and pings with fragment reassembly (7). Items 3 and 4 are in
/// <see cref="TcpInteropLoadTests"/>.
/// </summary>
[Trait("Category", "TcpInterop")]
public sealed class TcpInteropTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // 1. Connect from MeshNet to a Linux listener and from Linux to a MeshNet listener, IPv4 and IPv6.
    [InteropTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MeshNet_connects_to_a_Linux_listener(bool ipv6)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: cts.Token);
        using var listener = tunnel.ListenLinux(ipv6, 7001);

        var accept = listener.AcceptAsync(cts.Token).AsTask();
        await using var connection = await tunnel.Stack.ConnectTcpAsync(new IPEndPoint(TcpTunnel.Remote(ipv6), 7001), cts.Token);
        using var accepted = await accept;

        connection.RemoteEndPoint.Should().Be(new IPEndPoint(TcpTunnel.Remote(ipv6), 7001));
        connection.LocalEndPoint.Address.Should().Be(TcpTunnel.Local(ipv6));
        accepted.RemoteEndPoint.Should().Be(connection.LocalEndPoint, "Linux sees the connection coming from MeshNet's endpoint");
        await using var linux = new NetworkStream(accepted, ownsSocket: false);
        await ExchangeGreetingsAsync(connection, linux, accepted, cts.Token);
    }

    [InteropTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Linux_connects_to_a_MeshNet_listener(bool ipv6)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: cts.Token);
        await using var listener = tunnel.Stack.ListenTcp(new IPEndPoint(ipv6 ? IPAddress.IPv6Any : IPAddress.Any, 7002));
        listener.LocalEndPoint.Port.Should().Be(7002);

        var accept = listener.AcceptAsync(cts.Token).AsTask();
        using var client = await tunnel.ConnectLinuxAsync(ipv6, 7002, cts.Token);
        await using var connection = await accept;

        connection.LocalEndPoint.Should().Be(new IPEndPoint(TcpTunnel.Local(ipv6), 7002));
        connection.RemoteEndPoint.Should().Be(client.LocalEndPoint, "MeshNet sees the connection coming from the Linux socket");
        await using var linux = new NetworkStream(client, ownsSocket: false);
        await ExchangeGreetingsAsync(connection, linux, client, cts.Token);
    }

    // 2. 256 MiB each direction on a clean link, SHA-256 verified.
    [InteropFact]
    public async Task Two_hundred_fifty_six_MiB_each_way_on_a_clean_link_arrive_intact()
    {
        const long bytes = 256L << 20;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: cts.Token);
        var result = await TcpTransfers.BulkBothWaysAsync(tunnel, bytes, cts.Token);
        output.WriteLine(result.ToString());

        result.AssertIntact(bytes);
        result.Drops.ToLinux.Should().Be(0, "the link is clean");
        result.Drops.Unintended.Should().Be(0, result.Drops.ToString());
    }

    // 5. Zero window: the Linux reader stops for 10 s, then resumes; the transfer completes.
    [InteropFact]
    public async Task A_zero_window_held_for_ten_seconds_by_Linux_is_waited_out()
    {
        const long bytes = 16L << 20;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: ct);
        // A small receive buffer (the kernel doubles it) so that the window closes quickly.
        using var listener = tunnel.ListenLinux(ipv6: false, 7005, receiveBuffer: 64 * 1024);
        var accept = listener.AcceptAsync(ct).AsTask();
        await using var connection = await tunnel.Stack.ConnectTcpAsync(new IPEndPoint(TcpTunnel.RemoteV4, 7005), ct);
        await using var linux = LinuxTcp.Stream(await accept);
        var before = await tunnel.ReadLinuxCountersAsync(ct);

        var gate = new ReadGate();
        var readerProgress = new TransferProgress();
        var senderProgress = new TransferProgress();
        var receive = StreamTransfer.ReceiveAsync(linux, gate, readerProgress, ct);
        var send = StreamTransfer.SendAsync(connection, bytes, seed: 5, () => connection.ShutdownWriteAsync(ct), senderProgress, ct);

        await Poll.UntilAsync(() => readerProgress.Bytes >= 1 << 20, Timeout, "the first MiB to reach Linux", ct);
        gate.Pause();
        var paused = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        long stalledAt = senderProgress.Bytes;
        await Task.Delay(TimeSpan.FromSeconds(8), ct);
        long stillAt = senderProgress.Bytes;
        var during = (await tunnel.ReadLinuxCountersAsync(ct)).Minus(before);
        gate.Resume();
        paused.Stop();

        var sent = await send;
        var received = await receive;
        output.WriteLine($"paused {paused.Elapsed.TotalSeconds:0.0} s at {readerProgress.Bytes} read; sender stalled at {stalledAt}/{stillAt}; Linux {during}; stack {tunnel.StackCounters}");
        (received.Bytes, received.Sha256).Should().Be((bytes, StreamTransfer.ExpectedSha256(bytes, seed: 5)));
        sent.Sha256.Should().Be(received.Sha256);
        stalledAt.Should().BeLessThan(bytes, "the sender could not finish while the reader was stopped");
        (stillAt - stalledAt).Should().BeLessThanOrEqualTo(StreamTransfer.ChunkSize, "nothing moved while the window was closed");
        during["TcpExt.TCPToZeroWindowAdv"].Should().BePositive("Linux advertised a zero window");
        paused.Elapsed.Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(10));
    }

    // 6a. Linux closes with unread data: the kernel sends RST and MeshNet sees a reset.
    [InteropFact]
    public async Task Linux_closing_with_unread_data_resets_the_MeshNet_connection()
    {
        using var cts = new CancellationTokenSource(Timeout);
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: ct);
        using var listener = tunnel.ListenLinux(ipv6: false, 7006);
        var accept = listener.AcceptAsync(ct).AsTask();
        await using var connection = await tunnel.Stack.ConnectTcpAsync(new IPEndPoint(TcpTunnel.RemoteV4, 7006), ct);
        var accepted = await accept;
        await connection.WriteAsync(new byte[10_000], ct);
        await Poll.UntilAsync(() => accepted.Available >= 10_000, Timeout, "the data to wait unread at Linux", ct);

        accepted.Dispose(); // close(2) with unread data: RFC 2525 says RST, and Linux does it

        var buffer = new byte[1024];
        var reset = await FluentActions.Awaiting(async () =>
            {
                while (await connection.ReadAsync(buffer, ct) > 0)
                {
                }
            })
            .Should().ThrowAsync<IOException>("a reset is an error, not an end of stream");
        reset.Which.InnerException.Should().BeOfType<SocketException>()
            .Which.SocketErrorCode.Should().Be(SocketError.ConnectionReset);
        await FluentActions.Awaiting(async () => await connection.WriteAsync(new byte[100], ct))
            .Should().ThrowAsync<IOException>("the connection is gone");
    }

    // 6b. MeshNet aborts: Linux sees ECONNRESET.
    [InteropFact]
    public async Task MeshNet_abort_makes_Linux_see_ECONNRESET()
    {
        using var cts = new CancellationTokenSource(Timeout);
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: ct);
        await using var listener = tunnel.Stack.ListenTcp(new IPEndPoint(IPAddress.Any, 7007));
        var accept = listener.AcceptAsync(ct).AsTask();
        using var client = await tunnel.ConnectLinuxAsync(ipv6: false, 7007, ct);
        var connection = await accept;
        await client.SendAsync(Encoding.ASCII.GetBytes("unread by MeshNet"), ct);

        connection.Abort();

        var error = await FluentActions.Awaiting(async () => await client.ReceiveAsync(new byte[100], ct))
            .Should().ThrowAsync<SocketException>();
        error.Which.SocketErrorCode.Should().Be(SocketError.ConnectionReset, "Linux got an RST: ECONNRESET");
        await connection.DisposeAsync();
    }

    // 7. The namespace pings MeshNet over IPv4 and IPv6, including 3,000-byte pings that arrive
    //    fragmented, are reassembled and are answered (the reply is fragmented by the stack).
    [InteropTheory]
    [InlineData(false, 56)]
    [InlineData(true, 56)]
    [InlineData(false, 3000)]
    [InlineData(true, 3000)]
    public async Task The_namespace_pings_MeshNet(bool ipv6, int payload)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: ct);
        var counters = tunnel.StackCounters;
        long receivedBefore = counters.PacketsReceived, sentBefore = counters.PacketsSent;
        var target = TcpTunnel.Local(ipv6).ToString();

        var ping = await tunnel.Namespace.ExecAsync("ping", ["-n", "-c", "3", "-i", "0.2", "-W", "5", "-M", "dont", "-s", payload.ToString(System.Globalization.CultureInfo.InvariantCulture), target],
            ShellOptions.Unchecked with { Timeout = TimeSpan.FromSeconds(40) }, ct);
        output.WriteLine(ping.StandardOutput + ping.StandardError);

        ping.Succeeded.Should().BeTrue(ping.StandardOutput + ping.StandardError);
        ping.StandardOutput.Should().Contain("3 packets transmitted, 3 received");
        ping.StandardOutput.Should().Contain($"{payload + 8} bytes from {target}", "each reply carries the whole payload back");
        if (payload > 1420)
        {
            // 3,028 bytes (IPv4) or 3,048 (IPv6) over a 1420-byte MTU: 3 fragments each way per ping.
            (counters.PacketsReceived - receivedBefore).Should().BeGreaterThanOrEqualTo(9, "the requests arrived as fragments");
            (counters.PacketsSent - sentBefore).Should().BeGreaterThanOrEqualTo(9, "the replies left as fragments");
        }
    }

    // A short exchange each way, then a half-close each way.
    private static async Task ExchangeGreetingsAsync(TcpConnection connection, NetworkStream linux, Socket linuxSocket, CancellationToken ct)
    {
        var fromMeshNet = Encoding.ASCII.GetBytes("hello from MeshNet");
        var fromLinux = Encoding.ASCII.GetBytes("hello from Linux, a little longer");
        await connection.WriteAsync(fromMeshNet, ct);
        await connection.FlushAsync(ct);
        var buffer = new byte[fromMeshNet.Length];
        await linux.ReadExactlyAsync(buffer, ct);
        buffer.Should().Equal(fromMeshNet);

        await linux.WriteAsync(fromLinux, ct);
        buffer = new byte[fromLinux.Length];
        await connection.ReadExactlyAsync(buffer, ct);
        buffer.Should().Equal(fromLinux);

        await connection.ShutdownWriteAsync(ct);
        (await linux.ReadAsync(new byte[1], ct)).Should().Be(0, "MeshNet's FIN ends Linux's read side");
        linuxSocket.Shutdown(SocketShutdown.Send);
        (await connection.ReadAsync(new byte[1], ct)).Should().Be(0, "Linux's FIN ends MeshNet's read side");
    }
}
