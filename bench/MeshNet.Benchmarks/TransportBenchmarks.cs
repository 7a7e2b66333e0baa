// Run (from the repository root):
//   dotnet run -c Release --project bench/MeshNet.Benchmarks -- --filter '*TransportBenchmarks*'
// Quick check (few iterations, less precise):
//   dotnet run -c Release --project bench/MeshNet.Benchmarks -- --filter '*TransportBenchmarks*' --job short
// One direction only: add --anyCategories Encrypt   (or Decrypt)
// Decrypt iterations are one batch of 1,024 packets (about 1.7 ms, so the batch stays in L2):
// the MinIterationTime warning for them is expected; ask for more iterations (e.g.
// --iterationCount 60) rather than a bigger batch.

using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MeshNet.Benchmarks.Infrastructure;
using MeshNet.Userspace.Conn;
using NSec.Cryptography;
using MeshNet.Userspace.Net;

namespace MeshNet.Benchmarks;

/// <summary>
/// The WireGuard transport path for 1,420-byte inner IPv4 packets, single-threaded, beside raw
/// NSec ChaCha20-Poly1305 on the same data and keys in the same run. Target: the device at 80 %
/// or more of raw AEAD throughput (the "% of AEAD" column; Ratio is its inverse).
/// </summary>
/// <remarks>
/// <para>Set-up: two real devices (<see cref="DevicePair"/>) with one handshake done through
/// the device's handshake code. The measured device is the initiator (its sessions take the
/// extra rekey-age checks); its bind is a <see cref="NullBind"/>. The other device's bind
/// captures what it sends.</para>
/// <para>Encrypt (one operation = one packet): <c>Device</c> is <c>WritePacket(packet)</c>
/// (route lookup, pooled copy, padding, counter, AEAD seal, header, bind send, counters,
/// timers); <c>RawAead</c> seals the same 1,420 bytes in place into 1,436 with the same session
/// send key and a counter nonce.</para>
/// <para>Decrypt (one operation = one packet, <see cref="Batch"/> per invocation): before each
/// invocation the other device encrypts <see cref="Batch"/> fresh transport messages (the replay
/// window rejects repeated counters and the receive path decrypts in place, so every invocation
/// needs new ciphertexts; set-up time is not measured). <c>Device</c> hands each one to the
/// receive entry point the device gave its bind (index lookup, expiry, AEAD open in place,
/// replay window, key rotation check, timers, inner-header and cryptokey-routing check, sink);
/// the sink discards. <c>RawAead</c> opens the same messages in place with the same session
/// receive key (nonce from the header's counter).</para>
/// <para>The clock is a frozen <see cref="BenchClock"/> (sessions never expire; each read still
/// costs a real clock read). Allocations must be 0 B per operation.</para>
/// </remarks>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[Config(typeof(Config))]
public class TransportBenchmarks
{
    /// <summary>Inner IP packet size: the default tunnel MTU.</summary>
    public const int PacketSize = 1420;

    /// <summary>Messages decrypted per invocation in the Decrypt category (about 1.5 MB of ciphertext: fits L2).</summary>
    public const int Batch = 1024;

    private const string EncryptCategory = "Encrypt";
    private const string DecryptCategory = "Decrypt";
    private const int TagSize = 16;
    private const int TransportHeaderSize = 16;

    private static readonly AeadAlgorithm ChaCha = AeadAlgorithm.ChaCha20Poly1305;

    private DevicePair _pair = null!;
    private NullBind _deviceBind = null!;
    private CaptureBind _captured = null!;
    private DiscardSink _sink = null!;
    private IDatagramReceiver _receiver = null!;
    private NetEndpoint _remoteEndpoint;
    private byte[] _outbound = null!;
    private byte[] _inbound = null!;
    private byte[] _rawBuffer = null!;
    private ulong _rawCounter;
    private Key _sendKey = null!;
    private Key _receiveKey = null!;
    private long _deliveredBeforeBatch;
    private int _rawFailures;

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddColumn(new GigabitsPerSecondColumn(PacketSize));
            AddColumn(new PercentOfBaselineColumn("% of AEAD", "Throughput as a share of raw NSec ChaCha20-Poly1305 on the same data (baseline mean / mean)"));
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        _deviceBind = new NullBind();
        _captured = new CaptureBind(Batch, 2048);
        _sink = new DiscardSink();
        _pair = new DevicePair(new BenchClock(), _deviceBind, _captured, initiatorSink: _sink);
        _pair.HandshakeThroughProtocol();

        // The other device (responder) may send only once its session is confirmed, which normally
        // happens on the first transport message from the initiator; the measured device's bind
        // drops everything, so confirm it directly through the same Peer method the receive path uses.
        var remotePeer = _pair.InitiatorOnResponder;
        if (remotePeer.NextKeypair is not { } next || !remotePeer.ReceivedWithKeypair(next))
        {
            DevicePair.Fail("the responder's session could not be confirmed");
        }

        _receiver = _deviceBind.Receiver ?? throw new InvalidOperationException("The device did not open its bind.");
        _remoteEndpoint = DevicePair.ResponderEndpoint;
        _outbound = Ipv4Packet.Udp(DevicePair.InitiatorTunnel, DevicePair.ResponderTunnel, PacketSize);
        _inbound = Ipv4Packet.Udp(DevicePair.ResponderTunnel, DevicePair.InitiatorTunnel, PacketSize);

        var session = _pair.ResponderOnInitiator.CurrentKeypair ?? throw new InvalidOperationException("No session.");
        _sendKey = session.SendKey;
        _receiveKey = session.ReceiveKey;
        _rawBuffer = new byte[PacketSize + TagSize];
        _outbound.CopyTo(_rawBuffer, 0);

        // Prove both device paths work before measuring them.
        long sent = _pair.Initiator.Counters.TransportMessagesSent;
        _pair.Initiator.WritePacket(_outbound);
        if (_pair.Initiator.Counters.TransportMessagesSent != sent + 1)
        {
            DevicePair.Fail($"WritePacket did not send: [{_pair.Initiator.Counters}]");
        }
        ProduceBatch();
        Device_Receive();
        if (_sink.Bytes != (long)Batch * PacketSize)
        {
            DevicePair.Fail($"the receive path delivered {_sink.Count} packets / {_sink.Bytes} bytes, not {Batch} x {PacketSize}");
        }

        JitWarmUp.Run(
            () => { ProduceBatch(); Device_Receive(); },
            () => { ProduceBatch(); RawAead_Decrypt(); },
            () => { for (int i = 0; i < 64; i++) { Device_WritePacket(); RawAead_Encrypt(); } });
        ProduceBatch();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        CheckLastBatch();
        _pair.ThrowIfDropped();
        _pair.Dispose();
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory(EncryptCategory)]
    public void RawAead_Encrypt()
    {
        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], _rawCounter++);
        var buffer = _rawBuffer.AsSpan();
        ChaCha.Encrypt(_sendKey, nonce, ReadOnlySpan<byte>.Empty, buffer[..PacketSize], buffer);
    }

    [Benchmark]
    [BenchmarkCategory(EncryptCategory)]
    public void Device_WritePacket() => _pair.Initiator.WritePacket(_outbound);

    [IterationSetup(Targets = [nameof(RawAead_Decrypt), nameof(Device_Receive)])]
    public void ProduceBatch()
    {
        CheckLastBatch();
        _captured.Reset();
        var remote = _pair.Responder;
        for (int i = 0; i < Batch; i++)
        {
            remote.WritePacket(_inbound);
        }
        if (_captured.Count != Batch)
        {
            DevicePair.Fail($"the other device produced {_captured.Count} messages, not {Batch}: [{remote.Counters}]");
        }
        _deliveredBeforeBatch = _sink.Count;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    [BenchmarkCategory(DecryptCategory)]
    public void RawAead_Decrypt()
    {
        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        var captured = _captured;
        for (int i = 0; i < Batch; i++)
        {
            var datagram = captured[i];
            BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], BinaryPrimitives.ReadUInt64LittleEndian(datagram[8..]));
            var ciphertext = datagram[TransportHeaderSize..];
            if (!ChaCha.Decrypt(_receiveKey, nonce, ReadOnlySpan<byte>.Empty, ciphertext, ciphertext[..^TagSize]))
            {
                _rawFailures++;
            }
        }
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    [BenchmarkCategory(DecryptCategory)]
    public void Device_Receive()
    {
        var receiver = _receiver;
        var captured = _captured;
        for (int i = 0; i < Batch; i++)
        {
            receiver.OnDatagram(captured[i], in _remoteEndpoint);
        }
    }

    /// <summary>A batch is either untouched (overhead iterations) or fully delivered; raw opens never fail.</summary>
    private void CheckLastBatch()
    {
        long delivered = _sink.Count - _deliveredBeforeBatch;
        if ((delivered != 0 && delivered != Batch) || _rawFailures != 0)
        {
            DevicePair.Fail($"last batch: {delivered} of {Batch} delivered, {_rawFailures} raw failures, device [{_pair.Initiator.Counters}]");
        }
        _pair.ThrowIfDropped();
    }
}
