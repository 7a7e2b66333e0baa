// Run (from the repository root):
//   dotnet run -c Release --project bench/MeshNet.Benchmarks -- --filter '*HandshakeBenchmarks*'
// Quick check (few iterations, less precise):
//   dotnet run -c Release --project bench/MeshNet.Benchmarks -- --filter '*HandshakeBenchmarks*' --job short
// One category only: add --anyCategories Handshake   (or Primitives)

using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using MeshNet.Benchmarks.Infrastructure;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.WireGuard;
using NSec.Cryptography;

namespace MeshNet.Benchmarks;

/// <summary>
/// WireGuard handshakes per second per core, single-threaded, between two real devices.
/// </summary>
/// <remarks>
/// <para>Category "Handshake" (one operation = one complete handshake, both sides):</para>
/// <list type="bullet">
/// <item><c>X25519Floor</c> (baseline): exactly the X25519 work of one handshake through NSec:
/// 2 × <c>Key.Create(X25519)</c> (the two ephemeral key pairs: one fixed-base scalar
/// multiplication each) + 6 × <c>X25519.Agree</c> (initiator es, ee, se; responder es, ee, se),
/// static and ephemeral keys as NSec handles, each shared secret disposed. The static-static
/// DH is precomputed per peer by the device, so no handshake pays for it. No hashing, no AEAD,
/// no key import or export: the Ratio column is "handshake cost / this X25519 cost".</item>
/// <item><c>X25519Math</c>: the same 2 fixed-base + 6 variable-base scalar multiplications called
/// straight into libsodium on stack buffers: the arithmetic alone, without NSec's key and
/// shared-secret handles (each of which is a sodium_malloc'd secure allocation).</item>
/// <item><c>Protocol</c>: the device's handshake code called on its internal members:
/// CreateInitiation + AddMacs, CheckMac1 + ConsumeInitiation, CreateResponse + AddMacs,
/// BeginSymmetricSession (responder), CheckMac1 + ConsumeResponse, BeginSymmetricSession
/// (initiator).</item>
/// <item><c>Device</c>: the whole device path over an in-process loopback bind:
/// Peer.SendHandshakeInitiation → bind → responder's receive entry point → handshake queue →
/// ProcessPendingHandshakes (mac1, consume, response, session, timers) → bind → initiator's
/// queue → ProcessPendingHandshakes (consume response, session, keepalive) → bind → responder
/// decrypts the keepalive and confirms the session (rotation next → current).</item>
/// </list>
/// <para>Category "Primitives": single operations, to see where a handshake's time goes
/// (baseline: one NSec agreement).</para>
/// <para>The clock is a <see cref="BenchClock"/>: it advances 1 s (Protocol) or 6 s (Device: the
/// initiation rate limit is 5 s) per handshake so that the responder's TAI64N replay and 20 ms
/// flood checks pass; its timers never fire.</para>
/// </remarks>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[Config(typeof(Config))]
public class HandshakeBenchmarks
{
    private const string HandshakeCategory = "Handshake";
    private const string PrimitivesCategory = "Primitives";

    private static readonly TimeSpan ProtocolStep = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan DeviceStep = TimeSpan.FromSeconds(6);

    private static readonly KeyAgreementAlgorithm X25519 = KeyAgreementAlgorithm.X25519;

    private DevicePair _protocolPair = null!;
    private DevicePair _devicePair = null!;
    private Key _staticA = null!;
    private Key _staticB = null!;
    private byte[] _staticAPublic = null!;
    private byte[] _staticBPublic = null!;
    private byte[] _staticASecret = null!;
    private byte[] _staticBSecret = null!;
    private readonly byte[] _chainingKey = new byte[NoiseHash.HashSize];
    private readonly byte[] _sealInput = new byte[32];
    private readonly byte[] _sealOutput = new byte[32 + 16];
    private long _deviceHandshakes;

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddColumn(new PerSecondColumn("Handshakes/s", "Complete handshakes per second on one core (1 s / Mean)", HandshakeCategory));
            AddColumn(new PerSecondColumn("Ops/s", "Primitive operations per second on one core (1 s / Mean)", PrimitivesCategory));
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        _protocolPair = new DevicePair(new BenchClock(), new NullBind(), new NullBind());

        var initiatorBind = new LoopbackBind(DevicePair.InitiatorEndpoint);
        var responderBind = new LoopbackBind(DevicePair.ResponderEndpoint);
        initiatorBind.Remote = responderBind;
        responderBind.Remote = initiatorBind;
        _devicePair = new DevicePair(new BenchClock(), initiatorBind, responderBind);

        var creation = new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
        _staticA = Key.Create(X25519, creation);
        _staticB = Key.Create(X25519, creation);
        _staticAPublic = _staticA.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        _staticBPublic = _staticB.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        _staticASecret = _staticA.Export(KeyBlobFormat.RawPrivateKey);
        _staticBSecret = _staticB.Export(KeyBlobFormat.RawPrivateKey);
        RandomNumberGenerator.Fill(_chainingKey);

        // Prove each measured operation does what it claims before measuring it.
        Protocol();
        CheckProtocolSession();
        Device();
        CheckDeviceSession();
        if (!X25519Math())
        {
            DevicePair.Fail("libsodium X25519 failed");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        CheckProtocolSession();
        CheckDeviceSession();
        _protocolPair.Dispose();
        _devicePair.Dispose();
        _staticA.Dispose();
        _staticB.Dispose();
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory(HandshakeCategory)]
    public void X25519Floor()
    {
        using var initiatorEphemeral = Key.Create(X25519);
        using var responderEphemeral = Key.Create(X25519);
        X25519.Agree(initiatorEphemeral, _staticB.PublicKey)?.Dispose();           // initiator: es
        X25519.Agree(_staticB, initiatorEphemeral.PublicKey)?.Dispose();           // responder: es
        X25519.Agree(responderEphemeral, initiatorEphemeral.PublicKey)?.Dispose(); // responder: ee
        X25519.Agree(responderEphemeral, _staticA.PublicKey)?.Dispose();           // responder: se
        X25519.Agree(initiatorEphemeral, responderEphemeral.PublicKey)?.Dispose(); // initiator: ee
        X25519.Agree(_staticA, responderEphemeral.PublicKey)?.Dispose();           // initiator: se
    }

    [Benchmark]
    [BenchmarkCategory(HandshakeCategory)]
    public bool X25519Math()
    {
        Span<byte> initiatorSecret = stackalloc byte[Libsodium.ScalarSize];
        Span<byte> responderSecret = stackalloc byte[Libsodium.ScalarSize];
        Span<byte> initiatorPublic = stackalloc byte[Libsodium.ScalarSize];
        Span<byte> responderPublic = stackalloc byte[Libsodium.ScalarSize];
        Span<byte> shared = stackalloc byte[Libsodium.ScalarSize];
        // Fixed ephemeral scalars: the arithmetic costs the same for any scalar (constant time).
        _staticASecret.AsSpan().CopyTo(initiatorSecret);
        _staticBSecret.AsSpan().CopyTo(responderSecret);
        initiatorSecret[0] ^= 0x5A;
        responderSecret[0] ^= 0xA5;
        bool ok = Libsodium.ScalarMultBase(initiatorPublic, initiatorSecret);      // initiator: e
        ok &= Libsodium.ScalarMult(shared, initiatorSecret, _staticBPublic);         // initiator: es
        ok &= Libsodium.ScalarMult(shared, _staticBSecret, initiatorPublic);         // responder: es
        ok &= Libsodium.ScalarMultBase(responderPublic, responderSecret);          // responder: e
        ok &= Libsodium.ScalarMult(shared, responderSecret, initiatorPublic);        // responder: ee
        ok &= Libsodium.ScalarMult(shared, responderSecret, _staticAPublic);         // responder: se
        ok &= Libsodium.ScalarMult(shared, initiatorSecret, responderPublic);        // initiator: ee
        ok &= Libsodium.ScalarMult(shared, _staticASecret, responderPublic);         // initiator: se
        CryptographicOperations.ZeroMemory(initiatorSecret);
        CryptographicOperations.ZeroMemory(responderSecret);
        return ok;
    }

    [Benchmark]
    [BenchmarkCategory(HandshakeCategory)]
    public void Protocol()
    {
        _protocolPair.Clock.Advance(ProtocolStep);
        _protocolPair.HandshakeThroughProtocol();
    }

    [Benchmark]
    [BenchmarkCategory(HandshakeCategory)]
    public void Device()
    {
        _devicePair.Clock.Advance(DeviceStep);
        _devicePair.ResponderOnInitiator.SendHandshakeInitiation(isRetry: false);
        _devicePair.Responder.ProcessPendingHandshakes();
        _devicePair.Initiator.ProcessPendingHandshakes();
        _deviceHandshakes++;
    }

    /// <summary>One NSec X25519 agreement (a SharedSecret handle is created and disposed).</summary>
    [Benchmark(Baseline = true)]
    [BenchmarkCategory(PrimitivesCategory)]
    public void Agree() => X25519.Agree(_staticA, _staticB.PublicKey)?.Dispose();

    /// <summary>One X25519 variable-base scalar multiplication, straight into libsodium.</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public bool ScalarMult()
    {
        Span<byte> shared = stackalloc byte[Libsodium.ScalarSize];
        return Libsodium.ScalarMult(shared, _staticASecret, _staticBPublic);
    }

    /// <summary>One NSec X25519 key pair (a fixed-base multiplication plus a secure key handle).</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public void KeyCreate() => Key.Create(X25519).Dispose();

    /// <summary>The device's DH helper: public-key import + NSec agreement + shared-secret export.</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public bool DeviceDh()
    {
        Span<byte> shared = stackalloc byte[NoiseSymmetricState.KeySize];
        return NoiseSymmetricState.Dh(_staticA, _staticBPublic, shared);
    }

    /// <summary>Importing (and disposing) one NSec ChaCha20-Poly1305 key: the price of one secure key handle.</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public void AeadKeyImport() => NoiseSymmetricState.ImportAeadKey(_chainingKey).Dispose();

    /// <summary>The device's handshake AEAD (NoiseSymmetricState.Seal) of a 32-byte static key: key import + seal + dispose.</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public void NoiseSeal() => NoiseSymmetricState.Seal(_chainingKey, _chainingKey, _sealInput, _sealOutput);

    /// <summary>One Noise KDF2 (HMAC-BLAKE2s, managed): a handshake runs about a dozen KDFs.</summary>
    [Benchmark]
    [BenchmarkCategory(PrimitivesCategory)]
    public void Kdf2()
    {
        Span<byte> key = stackalloc byte[NoiseHash.HashSize];
        NoiseHash.Kdf2(_chainingKey, _sealInput, _chainingKey, key);
    }

    private void CheckProtocolSession()
    {
        var initiatorSession = _protocolPair.ResponderOnInitiator.CurrentKeypair;
        var responderSession = _protocolPair.InitiatorOnResponder.NextKeypair;
        if (initiatorSession is null || responderSession is null || initiatorSession.LocalIndex != responderSession.RemoteIndex)
        {
            DevicePair.Fail("the protocol handshake did not leave matching sessions");
        }
        _protocolPair.ThrowIfDropped();
    }

    private void CheckDeviceSession()
    {
        var initiatorSession = _devicePair.ResponderOnInitiator.CurrentKeypair;
        var responderSession = _devicePair.InitiatorOnResponder.CurrentKeypair;
        if (initiatorSession is null || responderSession is null || initiatorSession.LocalIndex != responderSession.RemoteIndex ||
            _devicePair.InitiatorOnResponder.NextKeypair is not null)
        {
            DevicePair.Fail("the device handshake did not leave confirmed, matching sessions");
        }
        var initiator = _devicePair.Initiator.Counters;
        var responder = _devicePair.Responder.Counters;
        if (initiator.SessionsEstablished != _deviceHandshakes || responder.SessionsEstablished != _deviceHandshakes ||
            responder.TransportMessagesReceived != _deviceHandshakes)
        {
            DevicePair.Fail($"{_deviceHandshakes} device handshakes, but initiator [{initiator}] responder [{responder}]");
        }
        _devicePair.ThrowIfDropped();
    }
}
