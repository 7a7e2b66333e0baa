using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.Userspace.Stack;
using Xunit.Abstractions;

namespace MeshNet.Interop.Tests.Tcp;

/// <summary>
/// MeshNet's TCP against Linux under load (issue 3, <c>Category=TcpInterop</c>): 64 MiB each way
/// through each impairment with retransmissions reported against what was actually dropped
/// (item 3), and 200 concurrent connections each moving 1 MiB both ways (item 4).
/// </summary>
[Trait("Category", "TcpInterop")]
[Collection(MeasurementCollection.Name)]
public sealed class TcpInteropLoadTests(ITestOutputHelper output)
{
    /// <summary>
    /// Retransmissions beyond the dropped data segments that are tolerated whatever the ratio:
    /// a tail loss probe (RACK-TLP) may resend the last segment of an idle-ending flow although
    /// nothing was lost, once or twice per direction change.
    /// </summary>
    private const int TailProbeAllowance = 4;

    /// <summary>
    /// Spurious retransmissions tolerated per datagram the relay held back towards Linux. Under
    /// reordering alone nothing is lost, so every retransmission is spurious and "under 10% of all
    /// retransmissions" could only mean none at all, which RACK-TLP (RFC 8985 §6.2) does not
    /// promise: before any reordering has been seen, three segments SACKed above a hole mark it
    /// lost at once (the DupThresh rule), and the reordering window then doubles (from min RTT / 4)
    /// per round trip in which a D-SACK proves a retransmission spurious, so each event deeper
    /// than the window so far costs one. Linux, facing the same relay the other way, does the same
    /// (its RetransSegs equal its TCPDSACKRecv, 9 to 39 against ~3,600 held-back datagrams). A
    /// stack that does not adapt spends one or more per event; 2% of the events is the bound.
    /// </summary>
    private const double SpuriousPerReorderingEvent = 0.02;

    // 3. 64 MiB each direction, SHA-256 verified, through each impairment in turn; the stack's
    //    retransmissions against the packets actually dropped; spurious ones under 10%.
    [InteropTheory("iptables")]
    [InlineData(InteropImpairment.RandomLoss)]
    [InlineData(InteropImpairment.Delay)]
    [InlineData(InteropImpairment.Reordering)]
    [InlineData(InteropImpairment.Duplication)]
    [InlineData(InteropImpairment.BurstyLoss)]
    public async Task Sixty_four_MiB_each_way_arrive_intact_through_the_impairment(InteropImpairment impairment)
    {
        const long bytes = 64L << 20;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(new TcpTunnelOptions { UseRelay = InteropImpairments.NeedsRelay(impairment), RelaySeed = 3 }, ct);
        await tunnel.ImpairAsync(impairment, ct);

        var result = await TcpTransfers.BulkBothWaysAsync(tunnel, bytes, ct);
        output.WriteLine($"{impairment}: {result}");
        if (tunnel.Relay is { } relay)
        {
            output.WriteLine(relay.ToString());
        }

        result.AssertIntact(bytes);
        result.Drops.Unintended.Should().Be(0, "only the impairment drops: " + result.Drops);
        if (InteropImpairments.Drops(impairment))
        {
            result.Drops.ToLinuxLarge.Should().BePositive("the impairment dropped some of MeshNet's data segments");
        }
        else
        {
            result.Drops.ToLinux.Should().Be(0);
        }

        if (impairment == InteropImpairment.Duplication)
        {
            tunnel.Outbound.Duplicated.Should().BePositive();
            result.Linux["TcpExt.TCPDSACKOldSent"].Should().BePositive("Linux got MeshNet's duplicated segments and reported them with D-SACKs");
            result.Drops.DeviceReplays.Should().BePositive("the relay's duplicated datagrams were dropped by WireGuard's replay filter");
        }

        // Every data segment lost on the way must have been sent again.
        result.StackRetransmissions.Should().BeGreaterThanOrEqualTo(result.Drops.ToLinuxLarge, result.ToString());

        // Spurious retransmissions stay under 10% of all retransmissions: by the stack's own
        // detection (DSACK, timestamps) and by counting what the path really dropped. Where the
        // path drops nothing and only reorders, a small share of the reordering events instead
        // (see SpuriousPerReorderingEvent).
        long reorderingEvents = tunnel.Relay?.AToB.Reordered ?? 0;
        long allowance = Math.Max(TailProbeAllowance, (long)(SpuriousPerReorderingEvent * reorderingEvents));
        long bound = Math.Max((long)(0.1 * result.StackRetransmissions), allowance);
        result.StackSpuriousRetransmissions.Should().BeLessThanOrEqualTo(bound, result.ToString());
        result.UnneededRetransmissions.Should().BeLessThanOrEqualTo(bound, result.ToString());
    }

    // 4. 200 concurrent connections each moving 1 MiB both ways: 100 opened by MeshNet to a
    //    Linux listener and 100 by Linux to a MeshNet listener, all established before any data
    //    moves, then all transfers at once.
    [InteropFact]
    public async Task Two_hundred_concurrent_connections_each_move_one_MiB_both_ways()
    {
        const int perSide = 100;
        const long bytes = 1L << 20;
        const int chunk = 64 * 1024;
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var ct = cts.Token;
        await using var tunnel = await TcpTunnel.StartAsync(cancellationToken: ct);
        using var linuxListener = tunnel.ListenLinux(ipv6: false, 7200);
        await using var meshNetListener = tunnel.Stack.ListenTcp(new IPEndPoint(IPAddress.Any, 7201), backlog: 256);
        var pairs = new List<(TcpConnection MeshNet, Socket Linux)>();
        var meshNetEnds = new List<TcpConnection>(); // everything opened, for clean-up on failure
        var linuxEnds = new List<Socket>();
        try
        {
            var stopwatch = Stopwatch.StartNew();
            var linuxAccepts = Task.Run(async () =>
            {
                var accepted = new List<Socket>();
                for (int i = 0; i < perSide; i++)
                {
                    var socket = await linuxListener.AcceptAsync(ct);
                    lock (linuxEnds)
                    {
                        linuxEnds.Add(socket);
                    }
                    accepted.Add(socket);
                }
                return accepted;
            }, ct);
            var meshNetAccepts = Task.Run(async () =>
            {
                var accepted = new List<TcpConnection>();
                for (int i = 0; i < perSide; i++)
                {
                    var connection = await meshNetListener.AcceptAsync(ct);
                    lock (meshNetEnds)
                    {
                        meshNetEnds.Add(connection);
                    }
                    accepted.Add(connection);
                }
                return accepted;
            }, ct);

            var outgoing = await Task.WhenAll(Enumerable.Range(0, perSide).Select(async _ =>
            {
                var connection = await tunnel.Stack.ConnectTcpAsync(new IPEndPoint(TcpTunnel.RemoteV4, 7200), ct);
                lock (meshNetEnds)
                {
                    meshNetEnds.Add(connection);
                }
                return connection;
            }));
            var incoming = await Task.WhenAll(Enumerable.Range(0, perSide).Select(async _ =>
            {
                var socket = await tunnel.ConnectLinuxAsync(ipv6: false, 7201, ct);
                lock (linuxEnds)
                {
                    linuxEnds.Add(socket);
                }
                return socket;
            }));
            var linuxAccepted = await linuxAccepts;
            var meshNetAccepted = await meshNetAccepts;
            var established = stopwatch.Elapsed;

            // Pair each MeshNet end with its Linux end by endpoints.
            var linuxByRemote = linuxAccepted.ToDictionary(s => (IPEndPoint)s.RemoteEndPoint!);
            pairs.AddRange(outgoing.Select(c => (c, linuxByRemote[c.LocalEndPoint])));
            var meshNetByRemote = meshNetAccepted.ToDictionary(c => c.RemoteEndPoint);
            pairs.AddRange(incoming.Select(s => (meshNetByRemote[(IPEndPoint)s.LocalEndPoint!], s)));
            pairs.Should().HaveCount(2 * perSide);
            pairs.Select(p => (p.MeshNet.LocalEndPoint, p.MeshNet.RemoteEndPoint)).Should().OnlyHaveUniqueItems("each connection is a distinct 4-tuple");

            var moved = await Task.WhenAll(pairs.Select(p => TcpTransfers.ExchangeAndVerifyAsync(p.MeshNet, p.Linux, bytes, chunk, ct)));
            stopwatch.Stop();

            output.WriteLine($"{pairs.Count} connections established in {established.TotalSeconds:0.0} s; {moved.Sum() >> 20} MiB moved in " +
                $"{stopwatch.Elapsed.TotalSeconds:0.0} s; stack {tunnel.StackCounters}; managed heap {GC.GetTotalMemory(false) >> 20} MiB");
            moved.Should().AllSatisfy(m => m.Should().Be(2 * bytes));
        }
        finally
        {
            foreach (var connection in meshNetEnds)
            {
                await connection.DisposeAsync();
            }
            foreach (var socket in linuxEnds)
            {
                socket.Dispose();
            }
        }
    }
}
