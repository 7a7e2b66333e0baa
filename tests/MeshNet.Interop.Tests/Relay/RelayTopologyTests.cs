using System.Diagnostics;
using System.Globalization;
using System.Net;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.Interop.Tests.Tcp;
using MeshNet.TestSupport.Interop;
using Xunit.Abstractions;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>
/// The whole impairment topology, proven without MeshNet's stack: Linux TCP between two
/// namespaces over two wireguard-go peers, through the relay (or iptables' statistic loss)
/// with each impairment of the TCP interop suite; data verified by SHA-256 both ways.
/// </summary>
[Trait("Category", "WireGuardInterop")]
public sealed class RelayTopologyTests(ITestOutputHelper output)
{
    private const long TransferBytes = 16L << 20;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromMinutes(3);

    [InteropTheory("iptables")]
    [InlineData(InteropImpairment.Clean)]
    [InlineData(InteropImpairment.RandomLoss)]
    [InlineData(InteropImpairment.Delay)]
    [InlineData(InteropImpairment.Reordering)]
    [InlineData(InteropImpairment.Duplication)]
    [InlineData(InteropImpairment.BurstyLoss)]
    public async Task Linux_TCP_over_wireguard_go_through_the_impairment_completes_intact(InteropImpairment impairment)
    {
        using var cts = new CancellationTokenSource(TransferTimeout);
        var ct = cts.Token;
        await using var pair = await RelayedWireGuardPair.StartAsync(seed: 42, ct);
        await using var loss = impairment == InteropImpairment.RandomLoss
            ? await StatisticLoss.AddAsync(pair.NamespaceB, pair.PeerB.ListenPort, InteropImpairments.RandomLossProbability, ct)
            : null;
        pair.Impair(InteropImpairments.Profile(impairment));
        var relayBefore = (pair.Relay.AToB.Snapshot(), pair.Relay.BToA.Snapshot());
        var countersA = await LinuxTcpCounters.ReadAsync(pair.NamespaceA, ct);
        var countersB = await LinuxTcpCounters.ReadAsync(pair.NamespaceB, ct);

        using var listener = LinuxTcp.Listen(pair.NamespaceB, new IPEndPoint(RelayedWireGuardPair.AddressB, 5201));
        var accept = listener.AcceptAsync(ct).AsTask();
        await using var client = LinuxTcp.Stream(await LinuxTcp.ConnectAsync(pair.NamespaceA, new IPEndPoint(RelayedWireGuardPair.AddressB, 5201), cancellationToken: ct));
        var serverSocket = await accept;
        await using var server = LinuxTcp.Stream(serverSocket);

        var stopwatch = Stopwatch.StartNew();
        var clientSide = StreamTransfer.ExchangeAsync(client, TransferBytes, seed: 1, LinuxTcp.ShutdownWrite(client.Socket), ct);
        var serverSide = StreamTransfer.ExchangeAsync(server, TransferBytes, seed: 2, LinuxTcp.ShutdownWrite(serverSocket), ct);
        var (aSent, aReceived) = await clientSide;
        var (bSent, bReceived) = await serverSide;
        stopwatch.Stop();

        // Teardown segments may still be crossing the relay: read its counters once it is quiet,
        // so that related counters (received, delayed, forwarded) describe the same datagrams.
        await Poll.UntilAsync(async c =>
        {
            var first = (pair.Relay.AToB.Snapshot(), pair.Relay.BToA.Snapshot());
            await Task.Delay(250, c);
            return first == (pair.Relay.AToB.Snapshot(), pair.Relay.BToA.Snapshot()) && pair.Relay.Pending == 0;
        }, TimeSpan.FromSeconds(15), "the relay to go quiet", ct);
        var relayAToB = pair.Relay.AToB.Snapshot().Minus(relayBefore.Item1);
        var relayBToA = pair.Relay.BToA.Snapshot().Minus(relayBefore.Item2);
        var retransA = (await LinuxTcpCounters.ReadAsync(pair.NamespaceA, ct)).Minus(countersA);
        var retransB = (await LinuxTcpCounters.ReadAsync(pair.NamespaceB, ct)).Minus(countersB);
        var iptables = loss is null ? default : await loss.ReadDroppedAsync(ct);
        output.WriteLine($"{impairment}: {2 * TransferBytes >> 20} MiB in {stopwatch.Elapsed.TotalSeconds:0.0} s; A->B {aSent}; B->A {bSent}");
        output.WriteLine($"relay A->B: {relayAToB}");
        output.WriteLine($"relay B->A: {relayBToA}");
        output.WriteLine($"iptables dropped: {iptables}");
        output.WriteLine($"Linux A: {retransA}");
        output.WriteLine($"Linux B: {retransB}");
        var tunDropsA = await WireGuardGoTuning.ReadInterfaceDropsAsync(pair.PeerA, ct);
        var tunDropsB = await WireGuardGoTuning.ReadInterfaceDropsAsync(pair.PeerB, ct);
        output.WriteLine($"TUN drops (tx/rx): A {tunDropsA}, B {tunDropsB}");

        aSent.Bytes.Should().Be(TransferBytes);
        bSent.Bytes.Should().Be(TransferBytes);
        (bReceived.Bytes, bReceived.Sha256).Should().Be((aSent.Bytes, aSent.Sha256), "B got exactly what A sent");
        (aReceived.Bytes, aReceived.Sha256).Should().Be((bSent.Bytes, bSent.Sha256), "A got exactly what B sent");
        aSent.Sha256.Should().Be(StreamTransfer.ExpectedSha256(TransferBytes, seed: 1));

        // Tuned wireguard-go and TUN queues drop nothing themselves: every loss is the impairment's.
        (retransA["Udp.RcvbufErrors"] + retransB["Udp.RcvbufErrors"]).Should().Be(0);
        (tunDropsA.Transmit + tunDropsA.Receive + tunDropsB.Transmit + tunDropsB.Receive).Should().Be(0);

        switch (impairment)
        {
            case InteropImpairment.Clean:
                // Nothing is lost: any retransmission is one Linux itself proved spurious with a
                // D-SACK (a tail-loss probe or an early timer when the machine is busy).
                (retransA.RetransSegs + retransB.RetransSegs - retransA["TcpExt.TCPDSACKRecv"] - retransB["TcpExt.TCPDSACKRecv"])
                    .Should().BeLessThanOrEqualTo(0, $"a clean link loses nothing: A {retransA}, B {retransB}");
                (relayAToB.Dropped + relayBToA.Dropped + relayAToB.Duplicated + relayAToB.Reordered + relayAToB.Delayed).Should().Be(0);
                relayAToB.Forwarded.Should().Be(relayAToB.Received);
                break;
            case InteropImpairment.RandomLoss:
                iptables.Inbound.Should().BeGreaterThan(0);
                iptables.Outbound.Should().BeGreaterThan(0);
                iptables.InboundLarge.Should().BeGreaterThan(0).And.BeLessThanOrEqualTo(iptables.Inbound);
                retransA.RetransSegs.Should().BeGreaterThanOrEqualTo(iptables.InboundLarge, "every data segment from A dropped on the way into B is sent again");
                (retransA.RetransSegs + retransB.RetransSegs).Should().BeGreaterThan(0, "lost segments are retransmitted");
                break;
            case InteropImpairment.Delay:
                relayAToB.Delayed.Should().Be(relayAToB.Received);
                relayBToA.Delayed.Should().Be(relayBToA.Received);
                (await MinimumRttAsync(pair, ct)).Should().BeInRange(29, 55, "two one-way delays of 20 ± 5 ms");
                break;
            case InteropImpairment.Reordering:
                relayAToB.Reordered.Should().BeCloseTo((long)(relayAToB.Received * 0.05), (ulong)(5 * Math.Sqrt(relayAToB.Received * 0.05) + 1));
                retransB["TcpExt.TCPOFOQueue"].Should().BeGreaterThan(0, "B's kernel queued out-of-order segments");
                break;
            case InteropImpairment.Duplication:
                relayAToB.Duplicated.Should().BeGreaterThan(0);
                relayAToB.Forwarded.Should().Be(relayAToB.Received + relayAToB.Duplicated);
                // WireGuard's replay filter drops the relay's copies before TCP sees them: the only
                // duplicates a kernel D-SACKs are the other side's own retransmissions (a tail-loss
                // probe on a busy machine), never the relay's hundred-odd copies.
                retransA["TcpExt.TCPDSACKOldSent"].Should().BeLessThanOrEqualTo(retransB.RetransSegs,
                    $"every duplicate A's TCP saw was one of B's retransmissions, not one of the relay's {relayBToA.Duplicated} copies");
                retransB["TcpExt.TCPDSACKOldSent"].Should().BeLessThanOrEqualTo(retransA.RetransSegs,
                    $"every duplicate B's TCP saw was one of A's retransmissions, not one of the relay's {relayAToB.Duplicated} copies");
                break;
            case InteropImpairment.BurstyLoss:
                (relayAToB.Dropped + relayBToA.Dropped).Should().BeGreaterThan(0);
                relayAToB.MeanLossBurst.Should().BeGreaterThan(1.5, "losses come in bursts");
                (retransA.RetransSegs + retransB.RetransSegs).Should().BeGreaterThan(0);
                break;
        }
    }

    private static async Task<double> MinimumRttAsync(RelayedWireGuardPair pair, CancellationToken ct)
    {
        var ping = await pair.NamespaceA.ExecAsync("ping", ["-n", "-c", "5", "-i", "0.2", "-W", "2", RelayedWireGuardPair.AddressB.ToString()], cancellationToken: ct);
        var summary = ping.StandardOutput.Split('\n').Single(line => line.StartsWith("rtt ", StringComparison.Ordinal));
        return double.Parse(summary.Split('=')[1].Trim().Split('/')[0], CultureInfo.InvariantCulture);
    }
}
