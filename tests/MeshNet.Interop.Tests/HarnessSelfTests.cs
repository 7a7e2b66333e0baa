using System.Globalization;
using System.Net;
using MeshNet.Interop.Tests.Infrastructure;
using MeshNet.TestSupport.Interop;

namespace MeshNet.Interop.Tests;

/// <summary>
/// Tests of the interop harness itself, against the real kernel and wireguard-go: if these
/// fail, every interop test built on the harness is suspect.
/// </summary>
[Trait("Category", "WireGuardInterop")]
public sealed class HarnessSelfTests
{
    private static readonly TimeSpan TestTimeout = TimeSpan.FromMinutes(2);

    [InteropFact]
    public async Task Namespace_and_veth_carry_IPv4_and_IPv6_and_leave_nothing_behind()
    {
        using var cts = new CancellationTokenSource(TestTimeout);
        var ct = cts.Token;
        string namespaceName;
        VethPair veth;
        await using (var ns = await NetworkNamespace.CreateAsync(ct))
        {
            namespaceName = ns.Name;
            ns.Name.Should().StartWith($"mnt{Environment.ProcessId}-");
            await using (veth = await VethPair.CreateAsync(ns, ct))
            {
                veth.A.Namespace.Should().BeNull();
                veth.B.Namespace.Should().BeSameAs(ns);
                veth.A.InterfaceName.Length.Should().BeLessThanOrEqualTo(15);
                veth.IPv4Subnet.Contains(veth.B.IPv4).Should().BeTrue();
                veth.IPv6Subnet.Contains(veth.B.IPv6).Should().BeTrue();
                (await NamespacesAsync(ct)).Should().Contain(ns.Name);
                (await LinksAsync(null, ct)).Should().Contain(veth.A.InterfaceName);
                (await LinksAsync(ns, ct)).Should().Contain(veth.B.InterfaceName).And.Contain("lo");

                await ns.PingAsync(veth.A.IPv4, cancellationToken: ct);
                await ns.PingAsync(veth.A.IPv6, cancellationToken: ct);
                await Shell.RunAsync("ping", ["-n", "-c", "1", "-W", "5", veth.B.IPv4.ToString()], ct);
                await Shell.RunAsync("ping", ["-n", "-c", "1", "-W", "5", veth.B.IPv6.ToString()], ct);
                await using (var sleeper = ns.StartProcess("sleep", ["600"]))
                {
                    await Poll.UntilAsync(async c => (await ns.GetPidsAsync(c)).Contains(sleeper.Id), TimeSpan.FromSeconds(10), "sleep to be in the namespace", ct);
                }
            }

            (await LinksAsync(null, ct)).Should().NotContain(veth.A.InterfaceName);
            (await LinksAsync(ns, ct)).Should().NotContain(veth.B.InterfaceName);

            // A process still running at disposal is killed with the namespace.
            var orphan = ns.StartProcess("sleep", ["600"]);
            await Poll.UntilAsync(async c => (await ns.GetPidsAsync(c)).Contains(orphan.Id), TimeSpan.FromSeconds(10), "sleep to be in the namespace", ct);
            await ns.DisposeAsync();
            await orphan.WaitForExitAsync(ct);
            await orphan.DisposeAsync();
        }

        (await NamespacesAsync(ct)).Should().NotContain(namespaceName);
        (await LinksAsync(null, ct)).Should().NotContain(veth.A.InterfaceName).And.NotContain(veth.B.InterfaceName);
    }

    [InteropFact]
    public async Task Two_wireguard_go_peers_handshake_and_carry_ping_over_IPv4_and_IPv6()
    {
        using var cts = new CancellationTokenSource(TestTimeout);
        var ct = cts.Token;
        var pid = Environment.ProcessId;
        var leftovers = new List<string>();
        var namespaces = new List<string>();
        var pids = new List<int>();
        var psk = (await Shell.RunAsync("wg", ["genpsk"], ct)).StandardOutput.Trim();

        await using (var nsA = await NetworkNamespace.CreateAsync(ct))
        await using (var nsB = await NetworkNamespace.CreateAsync(ct))
        await using (var outer = await VethPair.CreateAsync(nsA, nsB, ct))
        await using (var a = await WireGuardGoPeer.StartAsync(nsA, new() { Addresses = ["10.77.0.1/24", "fd77::1/64"] }, ct))
        await using (var b = await WireGuardGoPeer.StartAsync(nsB, new() { Addresses = ["10.77.0.2/24", "fd77::2/64"], ListenPort = 51820, Mtu = 1380 }, ct))
        {
            namespaces.AddRange([nsA.Name, nsB.Name]);
            pids.AddRange([a.ProcessId, b.ProcessId]);
            leftovers.AddRange([a.SocketPath, b.SocketPath, a.KeyDirectoryPath, b.KeyDirectoryPath]);
            a.InterfaceName.Should().StartWith($"mnw{pid}-").And.NotBe(b.InterfaceName);
            a.InterfaceName.Length.Should().BeLessThanOrEqualTo(15);
            File.Exists(a.SocketPath).Should().BeTrue();
            b.ListenPort.Should().Be(51820);
            a.ListenPort.Should().BeInRange(1, 65535);
            a.PublicKey.Should().Be(await WireGuardGoPeer.GetPublicKeyAsync(a.PrivateKeyBase64, ct));
            (await nsB.IpAsync(["-o", "link", "show", "dev", b.InterfaceName], cancellationToken: ct)).StandardOutput.Should().Contain("mtu 1380");

            // Outer IPv4 one way, outer IPv6 the other; a preshared key and a keepalive on a. b first:
            // a persistent keepalive makes a initiate at once, and b would drop that initiation
            // (costing a 5 s retry) if it did not know a yet.
            await b.SetPeerAsync(a.PublicKey, a.GetEndpoint(outer.A.IPv4), ["10.77.0.1/32", "fd77::1/128"], presharedKeyBase64: psk, cancellationToken: ct);
            await a.SetPeerAsync(b.PublicKey, b.GetEndpoint(outer.B.IPv6), ["10.77.0.2/32", "fd77::2/128"], persistentKeepalive: 25, presharedKeyBase64: psk, cancellationToken: ct);

            await a.PingAsync(IPAddress.Parse("10.77.0.2"), cancellationToken: ct);
            await a.PingAsync(IPAddress.Parse("fd77::2"), cancellationToken: ct);
            await b.PingAsync(IPAddress.Parse("10.77.0.1"), cancellationToken: ct);
            await b.PingAsync(IPAddress.Parse("fd77::1"), cancellationToken: ct);

            var seenByA = await a.WaitForHandshakeAsync(b.PublicKey, cancellationToken: ct);
            seenByA.LatestHandshake.Should().BeCloseTo(DateTimeOffset.UtcNow, TimeSpan.FromMinutes(1));
            seenByA.Endpoint.Should().Be(b.GetEndpoint(outer.B.IPv6));
            seenByA.AllowedIps.Should().BeEquivalentTo("10.77.0.2/32", "fd77::2/128");
            seenByA.PersistentKeepalive.Should().Be(25);
            seenByA.PresharedKey.Should().Be(psk);
            seenByA.RxBytes.Should().BePositive();
            seenByA.TxBytes.Should().BePositive();

            var seenByB = await b.WaitForHandshakeAsync(a.PublicKey, cancellationToken: ct);
            seenByB.PersistentKeepalive.Should().BeNull();
            seenByB.Endpoint.Should().NotBeNull();

            await a.RemovePeerAsync(b.PublicKey, ct);
            (await a.GetPeerStatusAsync(ct)).Should().BeEmpty();
            (await a.ExecAsync("ping", ["-n", "-c", "1", "-W", "1", "10.77.0.2"], ShellOptions.Unchecked, ct)).Succeeded.Should().BeFalse();
        }

        (await NamespacesAsync(ct)).Should().NotContain(namespaces);
        pids.Where(ProcessSignals.IsAlive).Should().BeEmpty();
        leftovers.Should().NotContain(path => File.Exists(path) || Directory.Exists(path));
    }

    [InteropFact("iptables", "ip6tables")]
    public async Task Iptables_rule_drops_traffic_until_disposed()
    {
        using var cts = new CancellationTokenSource(TestTimeout);
        var ct = cts.Token;
        await using var ns = await NetworkNamespace.CreateAsync(ct);
        await using var veth = await VethPair.CreateAsync(ns, ct);
        await ns.PingAsync(veth.A.IPv4, cancellationToken: ct);
        await ns.PingAsync(veth.A.IPv6, cancellationToken: ct);

        await using (await IptablesRule.AddAsync(ns, "OUTPUT", ["-p", "icmp", "-j", "DROP"], cancellationToken: ct))
        await using (await IptablesRule.AddAsync(ns, "OUTPUT", ["-p", "ipv6-icmp", "--icmpv6-type", "echo-request", "-j", "DROP"], family: IptablesFamily.IPv6, cancellationToken: ct))
        {
            (await ns.TryPingAsync(veth.A.IPv4, cancellationToken: ct)).Should().BeFalse();
            (await ns.TryPingAsync(veth.A.IPv6, cancellationToken: ct)).Should().BeFalse();
        }

        (await ns.ExecAsync("iptables", ["-w", "10", "-S", "OUTPUT"], cancellationToken: ct)).StandardOutput.Should().NotContain("DROP");
        await ns.PingAsync(veth.A.IPv4, cancellationToken: ct);
        await ns.PingAsync(veth.A.IPv6, cancellationToken: ct);
    }

    [InteropFact]
    public async Task Sweep_removes_leftovers_of_dead_processes_but_not_of_live_ones()
    {
        using var cts = new CancellationTokenSource(TestTimeout);
        var ct = cts.Token;

        // Above the largest possible pid_max (2^22), so this owner is never alive.
        const int DeadPid = 4_194_999;
        var suffix = Random.Shared.Next(0x1000).ToString("x3", CultureInfo.InvariantCulture);
        var deadNamespace = $"mnt{DeadPid}-{suffix}";
        var deadVeth = $"mnv{DeadPid}-{suffix}";
        var deadWireGuard = $"mnw{DeadPid}-{suffix}";
        var deadSocket = Path.Combine(LeftoverSweeper.WireGuardSocketDirectory, deadWireGuard + ".sock");
        var deadDirectory = Path.Combine(Path.GetTempPath(), $"mnk{DeadPid}-{suffix}");

        await using var live = await NetworkNamespace.CreateAsync(ct);
        BackgroundProcess? wireGuard = null;
        try
        {
            await Shell.RunAsync("ip", ["netns", "add", deadNamespace], ct);
            await Shell.RunAsync("ip", ["link", "add", deadVeth + "a", "type", "veth", "peer", "name", deadVeth + "b"], ct);
            Directory.CreateDirectory(deadDirectory);
            wireGuard = BackgroundProcess.Start(
                "ip",
                ["netns", "exec", deadNamespace, "wireguard-go", "-f", deadWireGuard],
                new Dictionary<string, string> { ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1" });
            await Poll.UntilAsync(() => File.Exists(deadSocket) || wireGuard.HasExited, TimeSpan.FromSeconds(10), "the stale wireguard-go socket", ct);
            File.Exists(deadSocket).Should().BeTrue(wireGuard.Output);

            var removed = await LeftoverSweeper.SweepAsync(ct);

            removed.Should().Contain([$"namespace {deadNamespace}", deadSocket, deadDirectory]);
            removed.Should().ContainMatch($"link {deadVeth}?", "deleting either end deletes the pair");
            removed.Should().ContainMatch($"process {wireGuard.Id} (wireguard-go -f {deadWireGuard})");
            await wireGuard.WaitForExitAsync(ct);
            (await NamespacesAsync(ct)).Should().NotContain(deadNamespace).And.Contain(live.Name);
            (await LinksAsync(null, ct)).Should().NotContain([deadVeth + "a", deadVeth + "b"]);
            File.Exists(deadSocket).Should().BeFalse();
            Directory.Exists(deadDirectory).Should().BeFalse();
        }
        finally
        {
            if (wireGuard is not null)
            {
                await wireGuard.DisposeAsync();
            }

            await Shell.RunAsync("ip", ["netns", "delete", deadNamespace], ShellOptions.Unchecked, CancellationToken.None);
            await Shell.RunAsync("ip", ["link", "delete", deadVeth + "a"], ShellOptions.Unchecked, CancellationToken.None);
            File.Delete(deadSocket);
            if (Directory.Exists(deadDirectory))
            {
                Directory.Delete(deadDirectory, recursive: true);
            }
        }
    }

    [Fact]
    public async Task Shell_passes_arguments_verbatim_and_reports_failures()
    {
        var echoed = await Shell.RunAsync("printf", ["%s\\n", "a b", "'c'", "$HOME", "; rm -rf /", ""]);
        echoed.StandardOutput.Should().Be("a b\n'c'\n$HOME\n; rm -rf /\n\n");

        var failure = await FluentActions.Awaiting(() => Shell.RunAsync("ls", ["/definitely/not/here"]))
            .Should().ThrowAsync<ShellCommandException>();
        failure.Which.ExitCode.Should().Be(2);
        failure.Which.Message.Should().Contain("ls /definitely/not/here").And.Contain("code 2").And.Contain("No such file");

        Shell.Run("ls", ["/definitely/not/here"], ShellOptions.Unchecked).ExitCode.Should().Be(2);
        (await Shell.RunAsync("cat", [], new ShellOptions { StandardInput = "piped" })).StandardOutput.Should().Be("piped");
    }

    [Fact]
    public async Task Shell_kills_a_command_that_times_out()
    {
        var started = DateTime.UtcNow;
        var timeout = await FluentActions.Awaiting(() => Shell.RunAsync("sleep", ["30"], new ShellOptions { Timeout = TimeSpan.FromMilliseconds(200) }))
            .Should().ThrowAsync<ShellCommandException>();
        timeout.Which.ExitCode.Should().BeNull();
        timeout.Which.Message.Should().Contain("timed out");
        (DateTime.UtcNow - started).Should().BeLessThan(TimeSpan.FromSeconds(10));

        FluentActions.Invoking(() => Shell.Run("sleep", ["30"], new ShellOptions { Timeout = TimeSpan.FromMilliseconds(200) }))
            .Should().Throw<ShellCommandException>().WithMessage("*timed out*");
        await FluentActions.Awaiting(() => Shell.RunAsync("no-such-command-mn", []))
            .Should().ThrowAsync<ShellCommandException>().WithMessage("*could not be started*");
    }

    [Fact]
    public void Wg_dump_is_parsed()
    {
        const string Dump =
            "cPriv=\tcPub=\t51820\toff\n"
            + "peer1=\t(none)\t10.0.0.2:51820\t10.77.0.2/32,fd77::2/128\t1700000000\t1234\t5678\t25\n"
            + "peer2=\tpsk=\t[fd6d::2]:1000\t(none)\t0\t0\t0\toff\n";

        var peers = WgShowPeer.ParseDump(Dump);

        peers.Should().HaveCount(2);
        peers[0].Should().BeEquivalentTo(new WgShowPeer(
            "peer1=", null, "10.0.0.2:51820", ["10.77.0.2/32", "fd77::2/128"], DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), 1234, 5678, 25));
        peers[1].Should().BeEquivalentTo(new WgShowPeer("peer2=", "psk=", "[fd6d::2]:1000", [], null, 0, 0, null));
    }

    [Fact]
    public void Run_ids_encode_the_owner_pid_and_fit_interface_names()
    {
        var name = RunId.NextName(RunId.VethKind, reserve: 1);
        name.Length.Should().BeLessThanOrEqualTo(14);
        RunId.TryParseOwner(name, out var kind, out var owner).Should().BeTrue();
        kind.Should().Be(RunId.VethKind);
        owner.Should().Be(Environment.ProcessId);
        RunId.NextName(RunId.VethKind).Should().NotBe(name);
        RunId.TryParseOwner("eth0", out _, out _).Should().BeFalse();
        LeftoverSweeper.IsStale(name, RunId.VethKind).Should().BeFalse();
        LeftoverSweeper.IsStale("mnv4194999-1a", RunId.VethKind).Should().BeTrue();
    }

    private static async Task<IReadOnlyList<string>> NamespacesAsync(CancellationToken ct)
        => (await Shell.RunAsync("ip", ["netns", "list"], ct)).StandardOutput
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ')[0])
            .ToList();

    private static async Task<IReadOnlyList<string>> LinksAsync(NetworkNamespace? ns, CancellationToken ct)
        => (await Shell.RunAsync("ip", ns is null ? ["-o", "link", "show"] : ["-n", ns.Name, "-o", "link", "show"], ct)).StandardOutput
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':', 3)[1].Trim().Split('@')[0])
            .ToList();
}
