using System.Diagnostics;
using System.Net;
using MeshNet.Userspace.Stack;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// The outcome of a bulk transfer both ways on one connection between MeshNet and Linux through a
/// <see cref="TcpTunnel"/>, with what the path dropped and what each side retransmitted meanwhile.
/// </summary>
internal sealed record BulkResult(
    TransferResult MeshNetSent,
    TransferResult MeshNetReceived,
    TransferResult LinuxSent,
    TransferResult LinuxReceived,
    TimeSpan Elapsed,
    PathDrops Drops,
    long StackRetransmissions,
    long StackSpuriousRetransmissions,
    LinuxTcpCounters Linux,
    string StackConnection)
{
    /// <summary>
    /// MeshNet retransmissions beyond the data segments the path dropped (each of those needs
    /// exactly one retransmission, a lost retransmission included): an upper bound on what was
    /// spurious, measured outside the stack. Negative when a lost segment was not resent.
    /// </summary>
    public long UnneededRetransmissions => StackRetransmissions - Drops.ToLinuxLarge;

    /// <summary>Throws unless each side received exactly what the other sent (count and SHA-256).</summary>
    public void AssertIntact(long bytes)
    {
        MeshNetSent.Bytes.Should().Be(bytes);
        LinuxSent.Bytes.Should().Be(bytes);
        (LinuxReceived.Bytes, LinuxReceived.Sha256).Should().Be((MeshNetSent.Bytes, MeshNetSent.Sha256), "Linux got exactly what MeshNet sent");
        (MeshNetReceived.Bytes, MeshNetReceived.Sha256).Should().Be((LinuxSent.Bytes, LinuxSent.Sha256), "MeshNet got exactly what Linux sent");
        MeshNetSent.Sha256.Should().Be(StreamTransfer.ExpectedSha256(bytes, TcpTransfers.MeshNetSeed));
    }

    public override string ToString() =>
        $"{MeshNetSent.Bytes >> 20} MiB each way in {Elapsed.TotalSeconds:0.0} s: MeshNet->Linux {MeshNetSent.Mbps:0} Mbit/s, Linux->MeshNet {LinuxSent.Mbps:0} Mbit/s\n" +
        $"path drops: {Drops}\n" +
        $"MeshNet retransmissions {StackRetransmissions} (spurious by its own count {StackSpuriousRetransmissions}, beyond the dropped data segments {UnneededRetransmissions}) " +
        $"against {Drops.ToLinuxLarge} data segments dropped; connection: {StackConnection}\n" +
        $"Linux retransmissions {Linux.RetransSegs} against {Drops.FromLinux} datagrams dropped from Linux; Linux: {Linux}";
}

/// <summary>Transfers between MeshNet's stack and Linux over a <see cref="TcpTunnel"/>.</summary>
internal static class TcpTransfers
{
    /// <summary>The pattern seed of what MeshNet sends.</summary>
    public const ulong MeshNetSeed = 0x4D65736854;

    /// <summary>The pattern seed of what Linux sends.</summary>
    public const ulong LinuxSeed = 0x4C696E7578;

    /// <summary>
    /// MeshNet connects to a Linux listener (IPv4) and both send <paramref name="bytes"/> at once,
    /// then half-close; each reads to the end. Counters are sampled around the transfer.
    /// </summary>
    public static async Task<BulkResult> BulkBothWaysAsync(TcpTunnel tunnel, long bytes, CancellationToken ct, int port = 7100)
    {
        using var listener = tunnel.ListenLinux(ipv6: false, port);
        var accept = listener.AcceptAsync(ct).AsTask();
        await using var connection = await tunnel.Stack.ConnectTcpAsync(new IPEndPoint(TcpTunnel.RemoteV4, port), ct);
        var socket = await accept;
        await using var linux = LinuxTcp.Stream(socket);

        var counters = tunnel.StackCounters;
        var dropsBefore = await tunnel.ReadDropsAsync(ct);
        var linuxBefore = await tunnel.ReadLinuxCountersAsync(ct);
        long retransmissionsBefore = counters.TcpRetransmissions, spuriousBefore = counters.TcpSpuriousRetransmissions;
        var stopwatch = Stopwatch.StartNew();

        var meshNetSide = StreamTransfer.ExchangeAsync(connection, bytes, MeshNetSeed, () => connection.ShutdownWriteAsync(ct), ct);
        var linuxSide = StreamTransfer.ExchangeAsync(linux, bytes, LinuxSeed, LinuxTcp.ShutdownWrite(socket), ct);
        var (meshNetSent, meshNetReceived) = await meshNetSide;
        var (linuxSent, linuxReceived) = await linuxSide;
        stopwatch.Stop();

        return new BulkResult(meshNetSent, meshNetReceived, linuxSent, linuxReceived, stopwatch.Elapsed,
            (await tunnel.ReadDropsAsync(ct)).Minus(dropsBefore),
            counters.TcpRetransmissions - retransmissionsBefore,
            counters.TcpSpuriousRetransmissions - spuriousBefore,
            (await tunnel.ReadLinuxCountersAsync(ct)).Minus(linuxBefore),
            Describe(connection));
    }

    /// <summary>The connection's loss-recovery statistics and RTT state, for failure messages.</summary>
    private static string Describe(TcpConnection connection)
    {
        var snapshot = connection.ControlBlock.Snapshot();
        return $"{connection.ControlBlock.Statistics}; min RTT {snapshot.MinRtt} us, SRTT {snapshot.Srtt} us, reo_wnd x{snapshot.ReoWndMult}";
    }

    /// <summary>
    /// Moves <paramref name="bytes"/> each way over <paramref name="connection"/> (MeshNet's end)
    /// and <paramref name="linux"/> (the kernel's end) at once, each side's data seeded by its own
    /// port, and checks that each side got the other's pattern. Returns the bytes received by both.
    /// </summary>
    public static async Task<long> ExchangeAndVerifyAsync(TcpConnection connection, System.Net.Sockets.Socket linux, long bytes, int chunkSize, CancellationToken ct)
    {
        ulong meshNetSeed = MeshNetSeed + (ulong)connection.LocalEndPoint.Port;
        ulong linuxSeed = LinuxSeed + (ulong)((IPEndPoint)linux.LocalEndPoint!).Port;
        await using var stream = LinuxTcp.Stream(linux);
        var meshNetSide = StreamTransfer.ExchangeAsync(connection, bytes, meshNetSeed, () => connection.ShutdownWriteAsync(ct), ct, chunkSize);
        var linuxSide = StreamTransfer.ExchangeAsync(stream, bytes, linuxSeed, LinuxTcp.ShutdownWrite(linux), ct, chunkSize);
        var (meshNetSent, meshNetReceived) = await meshNetSide;
        var (linuxSent, linuxReceived) = await linuxSide;
        (linuxReceived.Bytes, linuxReceived.Sha256).Should().Be((meshNetSent.Bytes, meshNetSent.Sha256), $"Linux {linux.LocalEndPoint} got what MeshNet {connection.LocalEndPoint} sent");
        (meshNetReceived.Bytes, meshNetReceived.Sha256).Should().Be((linuxSent.Bytes, linuxSent.Sha256), $"MeshNet {connection.LocalEndPoint} got what Linux {linux.LocalEndPoint} sent");
        meshNetSent.Bytes.Should().Be(bytes);
        linuxSent.Bytes.Should().Be(bytes);
        return meshNetReceived.Bytes + linuxReceived.Bytes;
    }
}
