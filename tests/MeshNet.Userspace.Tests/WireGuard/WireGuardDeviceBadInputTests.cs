using System.Buffers.Binary;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>Every class of bad datagram is dropped and counted by reason, never thrown.</summary>
[Trait("Category", "Unit")]
public sealed class WireGuardDeviceBadInputTests
{
    private static (DeviceTestBed Bed, TestNode A, TestNode B, ErrorRecorder Errors) Established()
    {
        var errors = new ErrorRecorder();
        var bed = new DeviceTestBed();
        var a = bed.AddNode("a", 1);
        var b = bed.AddNode("b", 2, options => options.LoggerFactory = errors);
        DeviceTestBed.Connect(a, b);
        DeviceTestBed.SendUdp(a, b);
        bed.Pump();
        DeviceTestBed.SendUdp(b, a);
        bed.Pump();
        b.Inbound.Drain();
        return (bed, a, b, errors);
    }

    private static void Inject(DeviceTestBed bed, TestNode target, byte[] datagram)
    {
        bed.Attacker("192.0.2.99").Send(datagram, target.Endpoint);
        bed.Pump();
    }

    private static byte[] Message(uint type, int size)
    {
        var message = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(message, type);
        return message;
    }

    [Theory]
    [InlineData(new byte[0], WireGuardDropReason.Truncated)]
    [InlineData(new byte[] { 1, 0, 0 }, WireGuardDropReason.Truncated)]
    [InlineData(new byte[] { 5, 0, 0, 0, 1, 2, 3, 4 }, WireGuardDropReason.UnknownMessageType)]
    [InlineData(new byte[] { 1, 1, 0, 0 }, WireGuardDropReason.UnknownMessageType)]
    [InlineData(new byte[] { 0, 0, 0, 0 }, WireGuardDropReason.UnknownMessageType)]
    public void ShortAndUnknownDatagrams(byte[] datagram, WireGuardDropReason reason)
    {
        var (bed, _, b, errors) = Established();
        using var _bed = bed;
        Inject(bed, b, datagram);
        b.Counters[reason].Should().Be(1);
        errors.Errors.Should().BeEmpty();
    }

    [Theory]
    [InlineData(1u, 147, WireGuardDropReason.Truncated)]
    [InlineData(1u, 149, WireGuardDropReason.InvalidSize)]
    [InlineData(2u, 91, WireGuardDropReason.Truncated)]
    [InlineData(2u, 1500, WireGuardDropReason.InvalidSize)]
    [InlineData(3u, 63, WireGuardDropReason.Truncated)]
    [InlineData(3u, 65, WireGuardDropReason.InvalidSize)]
    [InlineData(4u, 31, WireGuardDropReason.Truncated)]
    [InlineData(1u, 148, WireGuardDropReason.InvalidMac1)]
    [InlineData(2u, 92, WireGuardDropReason.InvalidMac1)]
    [InlineData(3u, 64, WireGuardDropReason.InvalidCookieReply)]
    [InlineData(4u, 32, WireGuardDropReason.UnknownReceiverIndex)]
    [InlineData(4u, 65535, WireGuardDropReason.UnknownReceiverIndex)]
    public void WrongSizesAndUnauthenticatedMessages(uint type, int size, WireGuardDropReason reason)
    {
        var (bed, _, b, errors) = Established();
        using var _bed = bed;
        var message = Message(type, size);
        Random.Shared.NextBytes(message.AsSpan(4));
        if (type == 4)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), 0xDEADBEEF); // no such index
        }
        Inject(bed, b, message);
        b.Counters[reason].Should().Be(1, b.Counters.ToString());
        errors.Errors.Should().BeEmpty();
    }

    [Fact]
    public void ForgedHandshakeMessagesWithValidMac1AreRejectedByReason()
    {
        var (bed, a, b, errors) = Established();
        using var _bed = bed;
        using var macs = new CookieGenerator(b.Device.PublicKey, bed.Time);

        // A response naming an index B never issued.
        var response = Message(2, WireGuardProtocol.ResponseSize);
        Random.Shared.NextBytes(response.AsSpan(4, 56));
        macs.AddMacs(response);
        Inject(bed, b, response);
        b.Counters[WireGuardDropReason.UnexpectedResponse].Should().Be(1);

        // An initiation whose encrypted static key was tampered with.
        var initiation = new byte[WireGuardProtocol.InitiationSize];
        a.Device.Context.Handshakes.CreateInitiation(a.PeerOf(b), initiation).Should().BeTrue();
        initiation[50] ^= 0x80;
        macs.AddMacs(initiation);
        Inject(bed, b, initiation);
        b.Counters[WireGuardDropReason.HandshakeFailed].Should().Be(1);

        // A well-formed initiation from a key B does not know.
        var stranger = bed.AddNode("stranger", 3);
        stranger.Device.SetPeer(DeviceTestBed.PeerConfig(b));
        stranger.PeerOf(b).SendHandshakeInitiation(isRetry: false);
        bed.Pump();
        b.Counters[WireGuardDropReason.UnknownPeer].Should().Be(1);
        errors.Errors.Should().BeEmpty();
    }

    [Fact]
    public void TamperedAndReplayedTransportMessagesAreDropped()
    {
        var (bed, a, b, errors) = Established();
        using var _bed = bed;
        DeviceTestBed.SendUdp(a, b);
        var transport = bed.Captured.Last(c => c.From == a.Endpoint && c.Datagram[0] == 4).Datagram;
        bed.Pump();
        b.Inbound.Drain().Should().ContainSingle();

        Inject(bed, b, transport);
        b.Counters[WireGuardDropReason.ReplayedCounter].Should().Be(1);

        var tampered = (byte[])transport.Clone();
        tampered[20] ^= 1;
        BinaryPrimitives.WriteUInt64LittleEndian(tampered.AsSpan(8), 1_000_000);
        Inject(bed, b, tampered);
        b.Counters[WireGuardDropReason.DecryptionFailed].Should().Be(1);

        var truncatedTag = transport[..^1];
        Inject(bed, b, truncatedTag);
        b.Counters[WireGuardDropReason.DecryptionFailed].Should().Be(2);
        b.Inbound.Drain().Should().BeEmpty();
        errors.Errors.Should().BeEmpty();
    }

    [Fact]
    public void RandomAndMutatedDatagramsNeverThrowAndAreAllCounted()
    {
        var (bed, a, b, errors) = Established();
        using var _bed = bed;
        // Valid samples of every message type to mutate.
        a.PeerOf(b).SendHandshakeInitiation(isRetry: false);
        DeviceTestBed.SendUdp(a, b, 300);
        var samples = bed.Captured.Select(c => c.Datagram).Where(d => d.Length >= 4).ToList();
        bed.Pump();
        samples.Add(Message(3, 64));
        var random = new Random(1234);
        var attacker = bed.Attacker("192.0.2.98");
        long droppedBefore = b.Counters.TotalDropped;
        const int count = 50_000;
        for (int i = 0; i < count; i++)
        {
            byte[] datagram;
            if (i % 4 == 0)
            {
                datagram = new byte[random.Next(0, 200)];
                random.NextBytes(datagram);
                if (datagram.Length > 0)
                {
                    datagram[0] = (byte)random.Next(0, 6);
                }
            }
            else
            {
                var sample = samples[random.Next(samples.Count)];
                datagram = sample[..Math.Max(0, sample.Length - (i % 7 == 0 ? random.Next(sample.Length) : 0))];
                for (int flips = random.Next(1, 4); flips > 0 && datagram.Length > 0; flips--)
                {
                    datagram[random.Next(datagram.Length)] ^= (byte)(1 << random.Next(8));
                }
            }
            attacker.Send(datagram, b.Endpoint);
            if (i % 256 == 0)
            {
                bed.Pump();
            }
        }
        bed.Pump();
        errors.Errors.Should().BeEmpty("bad input is dropped without exceptions");
        (b.Counters.TotalDropped - droppedBefore).Should().BeGreaterThan(count * 9 / 10);
        b.Inbound.Drain().Should().NotContain(packet => packet.Length == 0, "keepalives are never delivered as packets");
    }

    /// <summary>Captures error-level log entries (the device logs an error when it catches an exception).</summary>
    private sealed class ErrorRecorder : ILoggerFactory, ILogger
    {
        public List<string> Errors { get; } = [];

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error)
            {
                lock (Errors)
                {
                    Errors.Add(formatter(state, exception) + " " + exception);
                }
            }
        }

        public void Dispose()
        {
        }
    }
}
