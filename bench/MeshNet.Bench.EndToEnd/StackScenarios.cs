using System.Diagnostics;
using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Bench.EndToEnd;

/// <summary>
/// MeshNet's stack against itself: (b) two stacks over an in-memory link (the stack's own
/// ceiling) and (c) two stacks each behind a MeshNet WireGuard device, the devices talking UDP
/// over 127.0.0.1. CPU is this process's <see cref="Process.TotalProcessorTime"/> over the run
/// (both stacks, both devices, the link or the sockets' threads, and the benchmark's own loops).
/// </summary>
internal static class StackScenarios
{
    public const string MemoryName = "(b) stack <-> stack, in-memory link (64 KiB MTU)";
    public const string MemoryTunnelName = "(b') stack <-> stack, in-memory link (tunnel MTU)";
    public const string WireGuardName = "(c) stack+WireGuard <-> stack+WireGuard, UDP lo";
    public const double MemoryTargetGbps = 5;
    public const double WireGuardTargetGbps = 1;

    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);

    private static readonly IPAddress AddressA = IPAddress.Parse("10.0.0.1");
    private static readonly IPAddress AddressB = IPAddress.Parse("10.0.0.2");

    public static async Task<BenchResult> RunMemoryAsync(string name, int mtu, BenchOptions options, CancellationToken cancellationToken)
    {
        using var link = new MemoryLink(new MemoryLinkOptions { QueueCapacity = 16_384 });
        IpStack? a = null, b = null;
        try
        {
            a = IpStack.Create(new IpStackOptions { Link = link.A, Addresses = [AddressA], Mtu = mtu });
            b = IpStack.Create(new IpStackOptions { Link = link.B, Addresses = [AddressB], Mtu = mtu });
            link.A.Receiver = a;
            link.B.Receiver = b;
            return await BulkTcpAsync(name, name == MemoryName ? MemoryTargetGbps : null, a, b, options, cancellationToken);
        }
        finally
        {
            await DisposeAsync(a);
            await DisposeAsync(b);
        }
    }

    public static async Task<BenchResult> RunWireGuardAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var sinkA = new SinkSwitch();
        var sinkB = new SinkSwitch();
        await using var deviceA = await StartDeviceAsync(sinkA, options.Mtu, cancellationToken);
        await using var deviceB = await StartDeviceAsync(sinkB, options.Mtu, cancellationToken);
        deviceA.SetPeer(new WireGuardPeerConfig(deviceB.PublicKey)
        {
            Endpoint = new IPEndPoint(IPAddress.Loopback, deviceB.ListenPort),
            AllowedIps = [new IPNetwork(AddressB, 32)],
        });
        deviceB.SetPeer(new WireGuardPeerConfig(deviceA.PublicKey)
        {
            Endpoint = new IPEndPoint(IPAddress.Loopback, deviceA.ListenPort),
            AllowedIps = [new IPNetwork(AddressA, 32)],
        });

        IpStack? a = null, b = null;
        try
        {
            a = IpStack.Create(new IpStackOptions { Link = deviceA, Addresses = [AddressA], Mtu = options.Mtu });
            b = IpStack.Create(new IpStackOptions { Link = deviceB, Addresses = [AddressB], Mtu = options.Mtu });
            sinkA.Target = a;
            sinkB.Target = b;
            var result = await BulkTcpAsync(WireGuardName, WireGuardTargetGbps, a, b, options, cancellationToken);
            return result with { CpuSource = result.CpuSource + $"; device drops A {deviceA.Counters.TotalDropped}, B {deviceB.Counters.TotalDropped}" };
        }
        finally
        {
            await DisposeAsync(a);
            await DisposeAsync(b);
        }
    }

    /// <summary>
    /// Stack <paramref name="client"/> connects to <paramref name="server"/> and sends until the
    /// byte cap or the duration is reached, then half-closes; the server reads to the end.
    /// </summary>
    private static async Task<BenchResult> BulkTcpAsync(string name, double? target, IpStack client, IpStack server, BenchOptions options, CancellationToken cancellationToken)
    {
        await using var listener = server.ListenTcp(new IPEndPoint(AddressB, 5201));
        var accept = listener.AcceptAsync(cancellationToken).AsTask();
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectTimeout.CancelAfter(TimeSpan.FromSeconds(20));
        await using var sender = await client.ConnectTcpAsync(new IPEndPoint(AddressB, 5201), connectTimeout.Token);
        await using var receiver = await accept.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);

        var receivedSoFar = 0L;
        var receive = Task.Run(async () =>
        {
            var buffer = new byte[256 * 1024];
            int count;
            while ((count = await receiver.ReadAsync(buffer, cancellationToken)) > 0)
            {
                Interlocked.Add(ref receivedSoFar, count);
            }
            return Interlocked.Read(ref receivedSoFar);
        }, cancellationToken);

        var data = new byte[256 * 1024];
        Random.Shared.NextBytes(data);

        // Warm-up: let the JIT reach its optimized tier and the windows open before measuring.
        long sent = 0;
        var warmUp = Stopwatch.StartNew();
        while (warmUp.Elapsed < WarmUp)
        {
            await sender.WriteAsync(data, cancellationToken);
            sent += data.Length;
        }
        while (Interlocked.Read(ref receivedSoFar) < sent)
        {
            await Task.Delay(1, cancellationToken);
        }

        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        long measuredFrom = sent;
        var stopwatch = Stopwatch.StartNew();
        while (sent - measuredFrom < options.Bytes && stopwatch.Elapsed < options.Duration)
        {
            int count = (int)Math.Min(data.Length, options.Bytes - (sent - measuredFrom));
            await sender.WriteAsync(data.AsMemory(0, count), cancellationToken);
            sent += count;
        }
        await sender.ShutdownWriteAsync(cancellationToken);
        long received = await receive.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        stopwatch.Stop();
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        if (received != sent)
        {
            throw new InvalidOperationException($"{name}: sent {sent} bytes but {received} arrived.");
        }
        return new BenchResult(name, received - measuredFrom, stopwatch.Elapsed, cpu, "this process", target);
    }

    private static async Task<WireGuardDevice> StartDeviceAsync(IPacketSink inbound, int mtu, CancellationToken cancellationToken)
    {
        using var key = WireGuardPrivateKey.Generate();
        return await WireGuardDevice.StartAsync(new WireGuardDeviceOptions
        {
            PrivateKey = key,
            Bind = new UdpSocketBind(new UdpSocketBindOptions { BindAddress = IPAddress.Loopback }),
            InboundSink = inbound,
            Mtu = mtu,
        }, cancellationToken);
    }

    private static async ValueTask DisposeAsync(IpStack? stack)
    {
        if (stack is not null)
        {
            await stack.DisposeAsync();
        }
    }

    /// <summary>The device's inbound sink, pointed at the stack once it exists (each needs the other).</summary>
    private sealed class SinkSwitch : IPacketSink
    {
        private volatile IPacketSink? _target;

        public IPacketSink? Target
        {
            get => _target;
            set => _target = value;
        }

        public void WritePacket(ReadOnlySpan<byte> packet) => _target?.WritePacket(packet);
    }
}
