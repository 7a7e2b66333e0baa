using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MeshNet.Tests.Support;

namespace MeshNet.Tests;

/// <summary>
/// How <see cref="MeshNode.StartAsync"/> fails when there is no coordination service: a
/// closed port on loopback, a black hole, a cancelled token, a taken UDP port. The half-built
/// node must leave nothing behind (its UDP port is free again).
/// </summary>
[Trait("Category", "Unit")]
public sealed class MeshNodeStartFailureTests
{
    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static int ClosedTcpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static void PortShouldBeFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var act = () => socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
        act.Should().NotThrow("the node released its WireGuard socket");
    }

    private static MeshNodeOptions Options(int controlPort, int udpPort, RecordingLoggerFactory? logs = null) => new()
    {
        ControlUrl = new Uri($"http://127.0.0.1:{controlPort}"),
        AuthKey = "mnkey-never-logged-0123456789",
        Hostname = "test",
        BindAddress = IPAddress.Loopback,
        ListenPort = udpPort,
        StartTimeout = TimeSpan.FromSeconds(2),
        ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50),
        ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
        LoggerFactory = logs,
    };

    [Fact]
    public async Task AnUnreachableServiceFailsWithControlUnreachableAtTheTimeout()
    {
        int udp = FreeUdpPort();
        var logs = new RecordingLoggerFactory();
        var clock = Stopwatch.StartNew();
        var act = () => MeshNode.StartAsync(Options(ClosedTcpPort(), udp, logs));
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        clock.Elapsed.Should().BeGreaterThan(TimeSpan.FromSeconds(1.8)).And.BeLessThan(TimeSpan.FromSeconds(10));
        error.ErrorCode.Should().Be(MeshErrorCode.ControlUnreachable);
        error.Message.Should().Contain("127.0.0.1").And.Contain("Last error");
        error.InnerException.Should().NotBeNull();
        logs.Entries.Should().Contain(e => e.EventId.Id == 4052, "each failed attempt is logged before retrying");
        logs.AllText.Should().NotContain("mnkey-never-logged");
        PortShouldBeFree(udp);
    }

    [Fact]
    public async Task ABlackHoleFailsWithControlUnreachableToo()
    {
        using var blackHole = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        blackHole.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        blackHole.Listen(16);
        int udp = FreeUdpPort();
        var act = () => MeshNode.StartAsync(Options(((IPEndPoint)blackHole.LocalEndPoint!).Port, udp));
        (await act.Should().ThrowAsync<MeshException>()).Which.ErrorCode.Should().Be(MeshErrorCode.ControlUnreachable);
        PortShouldBeFree(udp);
    }

    [Fact]
    public async Task TheCallersTokenGivesOperationCanceled()
    {
        int udp = FreeUdpPort();
        var options = Options(ClosedTcpPort(), udp);
        options.StartTimeout = Timeout.InfiniteTimeSpan;
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        var act = () => MeshNode.StartAsync(options, cancel.Token);
        (await act.Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cancel.Token);
        PortShouldBeFree(udp);

        var already = () => MeshNode.StartAsync(Options(ClosedTcpPort(), udp), new CancellationToken(true));
        await already.Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task ATakenUdpPortFailsAtOnceWithAddressInUse()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int udp = ((IPEndPoint)holder.LocalEndPoint!).Port;
        var logs = new RecordingLoggerFactory();
        var act = () => MeshNode.StartAsync(Options(ClosedTcpPort(), udp, logs));
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.AddressInUse);
        error.Message.Should().Contain(udp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        logs.Entries.Should().NotContain(entry => entry.EventId.Id >= 4050 && entry.EventId.Id < 4100,
            "the socket is bound before the service is contacted (a control call to the closed port would have logged its failure)");
    }

    [Fact]
    public async Task TheStateStoreKeepsTheIdentityOfAFailedStart()
    {
        using var store = new InMemoryStateStore();
        var options = Options(ClosedTcpPort(), 0);
        options.StateStore = store;
        options.StartTimeout = TimeSpan.FromMilliseconds(500);
        await ((Func<Task>)(() => MeshNode.StartAsync(options))).Should().ThrowAsync<MeshException>();
        using var first = await store.LoadAsync();
        first.Should().NotBeNull("the key is saved before the service hears of it");
        await ((Func<Task>)(() => MeshNode.StartAsync(options))).Should().ThrowAsync<MeshException>();
        using var second = await store.LoadAsync();
        second!.PublicKey.Should().Be(first!.PublicKey, "a restart reuses the saved key");
    }
}
