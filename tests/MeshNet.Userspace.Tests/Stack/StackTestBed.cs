using System.Net;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Records every packet written into it (a stack's outbound link in tests).</summary>
internal sealed class RecordingLink : IPacketSink
{
    private readonly Lock _lock = new();
    private readonly List<byte[]> _packets = [];
    private long _count;

    /// <summary>When false, packets are only counted (for throughput and allocation tests).</summary>
    public bool KeepPackets { get; set; } = true;

    public long Count => Interlocked.Read(ref _count);

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        Interlocked.Increment(ref _count);
        if (KeepPackets)
        {
            var copy = packet.ToArray();
            lock (_lock)
            {
                _packets.Add(copy);
            }
        }
    }

    /// <summary>Takes every packet recorded so far.</summary>
    public List<byte[]> Drain()
    {
        lock (_lock)
        {
            var result = new List<byte[]>(_packets);
            _packets.Clear();
            return result;
        }
    }

    /// <summary>Takes every packet recorded so far, parsed.</summary>
    public List<ParsedPacket> DrainParsed() => Drain().Select(TestPackets.Parse).ToList();
}

/// <summary>
/// One stack under test, driven by hand: packets are injected with <see cref="Inject"/>, what it
/// sends is recorded in <see cref="Link"/>, time is a <see cref="FakeTimeProvider"/>.
/// </summary>
internal sealed class StackTestBed : IDisposable
{
    public static readonly IPAddress LocalV4 = IPAddress.Parse("10.0.0.1");
    public static readonly IPAddress RemoteV4 = IPAddress.Parse("10.0.0.2");
    public static readonly IPAddress OtherV4 = IPAddress.Parse("10.0.0.3");
    public static readonly IPAddress LocalV6 = IPAddress.Parse("fd00::1");
    public static readonly IPAddress RemoteV6 = IPAddress.Parse("fd00::2");
    public static readonly IPAddress OtherV6 = IPAddress.Parse("fd00::3");

    public StackTestBed(Action<IpStackOptions>? configure = null)
    {
        var options = new IpStackOptions
        {
            Link = Link,
            Addresses = [LocalV4, LocalV6],
            TimeProvider = Time,
        };
        configure?.Invoke(options);
        Stack = IpStack.Create(options);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public RecordingLink Link { get; } = new();

    public IpStack Stack { get; }

    public IpStackCounters Counters => Stack.Counters;

    public static IPAddress Local(bool v6) => v6 ? LocalV6 : LocalV4;

    public static IPAddress Remote(bool v6) => v6 ? RemoteV6 : RemoteV4;

    public void Inject(byte[] packet) => Stack.WritePacket(packet);

    public void InjectAll(IEnumerable<byte[]> packets)
    {
        foreach (var packet in packets)
        {
            Stack.WritePacket(packet);
        }
    }

    /// <summary>Every non-zero drop counter, to assert that exactly the expected ones moved.</summary>
    public IReadOnlyDictionary<StackDropReason, long> Drops => Counters.DropsSnapshot();

    public void Dispose() => Stack.Dispose();
}
