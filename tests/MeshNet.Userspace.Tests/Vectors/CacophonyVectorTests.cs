using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using MeshNet.Userspace.WireGuard;
using NSec.Cryptography;

namespace MeshNet.Userspace.Tests.Vectors;

/// <summary>
/// The cacophony test vector for Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, run through the exact
/// Noise code the WireGuard device uses (WireGuard is this pattern with its identifier as the
/// prologue). Both handshake messages and the four transport messages must match byte for byte.
/// </summary>
[Trait("Category", "Vectors")]
public sealed class CacophonyVectorTests
{
    private const string ProtocolName = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";

    private static JsonElement LoadVector()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Vectors", $"cacophony-{ProtocolName}.json");
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
    }

    private static byte[] Hex(JsonElement vector, string name) => Convert.FromHexString(vector.GetProperty(name).GetString()!);

    private static Key PrivateKey(byte[] raw) =>
        Key.Import(KeyAgreementAlgorithm.X25519, raw, KeyBlobFormat.RawPrivateKey);

    private static byte[] PublicOf(Key key) => key.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    [Fact]
    public void HandshakeAndTransportMessagesMatchTheVector()
    {
        var vector = LoadVector();
        vector.GetProperty("name").GetString().Should().Be(ProtocolName);
        var messages = vector.GetProperty("messages").EnumerateArray()
            .Select(m => (Payload: Convert.FromHexString(m.GetProperty("payload").GetString()!),
                          Ciphertext: Convert.FromHexString(m.GetProperty("ciphertext").GetString()!)))
            .ToArray();
        messages.Should().HaveCount(6);

        byte[] prologue = Hex(vector, "init_prologue");
        byte[] psk = Hex(vector, "init_psk");
        using var initiatorStatic = PrivateKey(Hex(vector, "init_static"));
        using var initiatorEphemeral = PrivateKey(Hex(vector, "init_ephemeral"));
        using var responderStatic = PrivateKey(Hex(vector, "resp_static"));
        using var responderEphemeral = PrivateKey(Hex(vector, "resp_ephemeral"));
        byte[] responderStaticPublic = Hex(vector, "init_remote_static");
        PublicOf(responderStatic).Should().Equal(responderStaticPublic);
        Hex(vector, "resp_psk").Should().Equal(psk);

        using var initiator = new NoiseSymmetricState();
        using var responder = new NoiseSymmetricState();
        initiator.InitializeProtocol(Encoding.ASCII.GetBytes(ProtocolName), prologue);
        responder.InitializeProtocol(Encoding.ASCII.GetBytes(ProtocolName), Hex(vector, "resp_prologue"));

        // Message 1: initiator -> responder.
        var staticStatic = new byte[32];
        NoiseSymmetricState.Dh(initiatorStatic, responderStaticPublic, staticStatic).Should().BeTrue();
        var message1 = new byte[NoiseIkPsk2.Message1Size(messages[0].Payload.Length)];
        NoiseIkPsk2.WriteMessage1(initiator, responderStaticPublic, initiatorEphemeral, PublicOf(initiatorStatic),
            staticStatic, messages[0].Payload, message1).Should().BeTrue();
        Convert.ToHexString(message1).Should().Be(Convert.ToHexString(messages[0].Ciphertext));

        var remoteStatic = new byte[32];
        NoiseIkPsk2.ReadMessage1Static(responder, responderStatic, responderStaticPublic, message1, remoteStatic).Should().BeTrue();
        remoteStatic.Should().Equal(PublicOf(initiatorStatic));
        var responderStaticStatic = new byte[32];
        NoiseSymmetricState.Dh(responderStatic, remoteStatic, responderStaticStatic).Should().BeTrue();
        responderStaticStatic.Should().Equal(staticStatic);
        var payload1 = new byte[messages[0].Payload.Length];
        NoiseIkPsk2.ReadMessage1Payload(responder, responderStaticStatic, message1, payload1).Should().BeTrue();
        payload1.Should().Equal(messages[0].Payload);

        // Message 2: responder -> initiator.
        var message2 = new byte[NoiseIkPsk2.Message2Size(messages[1].Payload.Length)];
        NoiseIkPsk2.WriteMessage2(responder, responderEphemeral, message1.AsSpan(0, 32), remoteStatic, psk,
            messages[1].Payload, message2).Should().BeTrue();
        Convert.ToHexString(message2).Should().Be(Convert.ToHexString(messages[1].Ciphertext));

        var payload2 = new byte[messages[1].Payload.Length];
        NoiseIkPsk2.ReadMessage2(initiator, initiatorEphemeral, initiatorStatic, psk, message2, payload2).Should().BeTrue();
        payload2.Should().Equal(messages[1].Payload);
        initiator.Hash.ToArray().Should().Equal(responder.Hash.ToArray(), "both sides end with the same transcript hash");

        // Split and the transport messages, alternating direction, counters from 0.
        var initiatorSend = new byte[32];
        var initiatorReceive = new byte[32];
        var responderSend = new byte[32];
        var responderReceive = new byte[32];
        NoiseIkPsk2.Split(initiator, initiator: true, initiatorSend, initiatorReceive);
        NoiseIkPsk2.Split(responder, initiator: false, responderSend, responderReceive);
        initiatorSend.Should().Equal(responderReceive);
        initiatorReceive.Should().Equal(responderSend);

        for (int i = 2; i < messages.Length; i++)
        {
            bool fromInitiator = i % 2 == 0;
            ulong counter = (ulong)((i - 2) / 2);
            var sealedMessage = Seal(fromInitiator ? initiatorSend : responderSend, counter, messages[i].Payload);
            Convert.ToHexString(sealedMessage).Should().Be(Convert.ToHexString(messages[i].Ciphertext), $"transport message {i}");
        }
    }

    [Fact]
    public void TamperedMessage1IsRejectedByTheResponder()
    {
        var vector = LoadVector();
        var message1 = Convert.FromHexString(vector.GetProperty("messages")[0].GetProperty("ciphertext").GetString()!);
        using var responderStatic = PrivateKey(Hex(vector, "resp_static"));
        for (int position = 32; position < 80; position += 7)
        {
            var tampered = (byte[])message1.Clone();
            tampered[position] ^= 0x01;
            using var responder = new NoiseSymmetricState();
            responder.InitializeProtocol(Encoding.ASCII.GetBytes(ProtocolName), Hex(vector, "resp_prologue"));
            NoiseIkPsk2.ReadMessage1Static(responder, responderStatic, PublicOf(responderStatic), tampered, new byte[32])
                .Should().BeFalse($"a flipped bit at {position} breaks authentication");
        }
    }

    private static byte[] Seal(byte[] key, ulong counter, byte[] payload)
    {
        using var aeadKey = NoiseSymmetricState.ImportAeadKey(key);
        var nonce = new byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(nonce.AsSpan(4), counter);
        return AeadAlgorithm.ChaCha20Poly1305.Encrypt(aeadKey, nonce, ReadOnlySpan<byte>.Empty, payload);
    }
}
