using System.Buffers.Binary;
using MeshNet.TestSupport;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Time.Testing;
using NSec.Cryptography;

namespace MeshNet.Userspace.Tests.Crypto;

/// <summary>
/// The mac1/mac2/cookie path end to end: an initiator's <see cref="CookieGenerator"/> against a
/// responder's <see cref="CookieChecker"/>, on a fake clock.
/// </summary>
[Trait("Category", "Unit")]
public sealed class CookieTests : IDisposable
{
    private const int InitiationSize = 148;
    private const int ResponseSize = 92;

    private static readonly NetEndpoint Source = NetEndpoint.Parse("192.0.2.10:51820");

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly WireGuardPublicKey _responderKey = RandomKey(1);
    private readonly CookieChecker _checker;
    private readonly CookieGenerator _generator;
    private int _messageSeed = 100;

    public CookieTests()
    {
        _checker = new CookieChecker(_responderKey, _time);
        _generator = new CookieGenerator(_responderKey, _time);
    }

    public void Dispose()
    {
        _checker.Dispose();
        _generator.Dispose();
    }

    private static WireGuardPublicKey RandomKey(int seed)
    {
        var bytes = new byte[32];
        new Random(seed).NextBytes(bytes);
        return WireGuardPublicKey.FromBytes(bytes);
    }

    // A handshake initiation with random contents and zeroed MAC fields.
    private byte[] NewMessage(int size = InitiationSize)
    {
        var message = new byte[size];
        new Random(_messageSeed++).NextBytes(message);
        message[0] = size == InitiationSize ? (byte)1 : (byte)2;
        message[1] = message[2] = message[3] = 0;
        message.AsSpan(size - 32).Clear();
        return message;
    }

    private static uint SenderIndex(byte[] message) => BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(4));

    private static ReadOnlySpan<byte> Mac1(byte[] message) => message.AsSpan(message.Length - 32, 16);

    private static ReadOnlySpan<byte> Mac2(byte[] message) => message.AsSpan(message.Length - 16, 16);

    private byte[] Reply(byte[] message, NetEndpoint source)
    {
        var reply = new byte[CookieChecker.ReplySize];
        _checker.CreateReply(message, SenderIndex(message), source, reply);
        return reply;
    }

    // Opens a reply the way the specification describes it, independently of CookieGenerator.
    private byte[] OpenReply(byte[] reply, ReadOnlySpan<byte> mac1)
    {
        var keyBytes = new byte[32];
        NoiseHash.Hash(NoiseHash.LabelCookie, _responderKey.AsSpan(), keyBytes);
        using var key = Key.Import(AeadAlgorithm.XChaCha20Poly1305, keyBytes, KeyBlobFormat.RawSymmetricKey);
        var cookie = new byte[16];
        AeadAlgorithm.XChaCha20Poly1305.Decrypt(key, reply.AsSpan(8, 24), mac1, reply.AsSpan(32), cookie)
            .Should().BeTrue("the reply must be XChaCha20-Poly1305 under HASH(\"cookie--\" || Spub) with AD = mac1");
        return cookie;
    }

    // Runs one cookie exchange: stamp a message, get a reply from the checker, feed it back.
    private void ObtainCookie(NetEndpoint source)
    {
        byte[] trigger = NewMessage();
        _generator.AddMacs(trigger);
        _generator.ConsumeReply(Reply(trigger, source)).Should().BeTrue();
    }

    [Fact]
    public void Mac1_MatchesTheSpecification_AndVerifies()
    {
        byte[] message = NewMessage();
        _generator.AddMacs(message);

        var mac1Key = new byte[32];
        NoiseHash.Hash(NoiseHash.LabelMac1, _responderKey.AsSpan(), mac1Key);
        var expected = new byte[16];
        NoiseHash.Mac(mac1Key, message.AsSpan(0, message.Length - 32), expected);
        Mac1(message).ToArray().Should().Equal(expected);

        _checker.CheckMac1(message).Should().BeTrue();
    }

    [Theory]
    [InlineData(0)]     // type
    [InlineData(4)]     // sender index
    [InlineData(100)]   // encrypted timestamp
    [InlineData(115)]   // last byte covered by mac1
    [InlineData(116)]   // mac1 itself
    [InlineData(131)]   // last byte of mac1
    public void Mac1_FlippedBit_IsRejected(int index)
    {
        byte[] message = NewMessage();
        _generator.AddMacs(message);

        message[index] ^= 0x01;

        _checker.CheckMac1(message).Should().BeFalse();
    }

    [Fact]
    public void Mac1_IgnoresMac2()
    {
        byte[] message = NewMessage();
        _generator.AddMacs(message);
        message[^1] ^= 0xFF;
        _checker.CheckMac1(message).Should().BeTrue();
    }

    [Fact]
    public void Mac1_ForAnotherResponder_IsRejected()
    {
        using var other = new CookieGenerator(RandomKey(2), _time);
        byte[] message = NewMessage();
        other.AddMacs(message);
        _checker.CheckMac1(message).Should().BeFalse();
    }

    [Fact]
    public void Mac1_WorksForResponseMessages()
    {
        byte[] response = NewMessage(ResponseSize);
        _generator.AddMacs(response);
        _checker.CheckMac1(response).Should().BeTrue();
    }

    [Fact]
    public void WithoutCookie_Mac2IsZero_AndCheckMac2Fails()
    {
        byte[] message = NewMessage();
        message.AsSpan(message.Length - 16).Fill(0xAA);
        _generator.AddMacs(message);

        Mac2(message).ToArray().Should().OnlyContain(b => b == 0);
        _checker.CheckMac2(message, Source).Should().BeFalse("the checker has no cookie secret yet");

        // Once the checker has a secret, an absent (zero) mac2 still fails.
        _ = Reply(NewMessage(), Source);
        _checker.CheckMac2(message, Source).Should().BeFalse();
    }

    [Fact]
    public void Reply_HasTheWireFormat()
    {
        byte[] trigger = NewMessage();
        _generator.AddMacs(trigger);

        byte[] reply = Reply(trigger, Source);
        byte[] second = Reply(trigger, Source);

        reply.AsSpan(0, 4).ToArray().Should().Equal(3, 0, 0, 0);
        BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(4)).Should().Be(SenderIndex(trigger));
        second.AsSpan(8, 24).ToArray().Should().NotEqual(reply.AsSpan(8, 24).ToArray(), "nonces are random");
        OpenReply(reply, Mac1(trigger)).Should().Equal(OpenReply(second, Mac1(trigger)), "one secret, one source, one cookie");
    }

    [Fact]
    public void CookieExchange_ThenMac2IsAcceptedFromThatSourceOnly()
    {
        byte[] trigger = NewMessage();
        _generator.AddMacs(trigger);
        byte[] reply = Reply(trigger, Source);
        byte[] cookie = OpenReply(reply, Mac1(trigger));
        _generator.ConsumeReply(reply).Should().BeTrue();

        byte[] message = NewMessage();
        _generator.AddMacs(message);

        var expectedMac2 = new byte[16];
        NoiseHash.Mac(cookie, message.AsSpan(0, message.Length - 16), expectedMac2);
        Mac2(message).ToArray().Should().Equal(expectedMac2);
        _checker.CheckMac1(message).Should().BeTrue();
        _checker.CheckMac2(message, Source).Should().BeTrue();

        _checker.CheckMac2(message, NetEndpoint.Parse("192.0.2.10:51821")).Should().BeFalse("another port");
        _checker.CheckMac2(message, NetEndpoint.Parse("192.0.2.11:51820")).Should().BeFalse("another address");
        _checker.CheckMac2(message, NetEndpoint.Parse("[2001:db8::10]:51820")).Should().BeFalse("another family");
        _checker.CheckMac2(message, NetEndpoint.Parse("[::ffff:192.0.2.10]:51820"))
            .Should().BeTrue("an IPv4-mapped address is the same source");

        message[50] ^= 0x04;
        _checker.CheckMac2(message, Source).Should().BeFalse("mac2 covers the body");
        message[50] ^= 0x04;
        message[message.Length - 20] ^= 0x04;
        _checker.CheckMac2(message, Source).Should().BeFalse("mac2 covers mac1");
    }

    [Fact]
    public void Reply_ForAMac1NeverSent_IsRefused()
    {
        using var other = new CookieGenerator(_responderKey, _time);
        byte[] othersMessage = NewMessage();
        other.AddMacs(othersMessage);
        byte[] reply = Reply(othersMessage, Source);

        _generator.ConsumeReply(reply).Should().BeFalse("this generator has sent nothing");

        _generator.AddMacs(NewMessage());
        _generator.ConsumeReply(reply).Should().BeFalse("bound to someone else's mac1");
        other.ConsumeReply(reply).Should().BeTrue();
    }

    [Fact]
    public void Reply_ForAnEarlierMac1_IsRefusedOnceANewerMessageWasStamped()
    {
        byte[] first = NewMessage();
        _generator.AddMacs(first);
        byte[] reply = Reply(first, Source);

        _generator.AddMacs(NewMessage());

        _generator.ConsumeReply(reply).Should().BeFalse();
    }

    [Fact]
    public void Reply_CanBeConsumedAgain_AsInWireGuardGo()
    {
        // wireguard-go keeps "last mac1 sent" set after a reply (the Linux module clears it).
        byte[] trigger = NewMessage();
        _generator.AddMacs(trigger);
        byte[] reply = Reply(trigger, Source);

        _generator.ConsumeReply(reply).Should().BeTrue();
        _generator.ConsumeReply(reply).Should().BeTrue();
    }

    public static TheoryData<int> TamperedOffsets => new() { 0, 1, 3, 8, 31, 32, 47, 48, 63 };

    [Theory]
    [MemberData(nameof(TamperedOffsets))]
    public void TamperedReply_IsRefused(int index)
    {
        byte[] trigger = NewMessage();
        _generator.AddMacs(trigger);
        byte[] reply = Reply(trigger, Source);

        reply[index] ^= 0x10;

        _generator.ConsumeReply(reply).Should().BeFalse();
        reply[index] ^= 0x10;
        _generator.ConsumeReply(reply).Should().BeTrue("the untouched reply is fine");
    }

    [Fact]
    public void MalformedReplies_AreRefusedWithoutThrowing()
    {
        _generator.AddMacs(NewMessage());
        _generator.ConsumeReply([]).Should().BeFalse();
        _generator.ConsumeReply(new byte[63]).Should().BeFalse();
        _generator.ConsumeReply(new byte[65]).Should().BeFalse();
        var zeros = new byte[64];
        zeros[0] = 3;
        _generator.ConsumeReply(zeros).Should().BeFalse();
        var garbage = new byte[64];
        new Random(5).NextBytes(garbage);
        garbage[0] = 3;
        garbage[1] = garbage[2] = garbage[3] = 0;
        _generator.ConsumeReply(garbage).Should().BeFalse();
    }

    [Fact]
    public void Cookie_IsUsedFor120Seconds_ThenMac2IsZero()
    {
        ObtainCookie(Source);

        _time.Advance(TimeSpan.FromSeconds(120));
        byte[] atLimit = NewMessage();
        _generator.AddMacs(atLimit);
        Mac2(atLimit).ToArray().Should().Contain(b => b != 0, "a cookie exactly 120 s old is still used");

        _time.Advance(TimeSpan.FromMilliseconds(1));
        byte[] expired = NewMessage();
        expired.AsSpan(expired.Length - 16).Fill(0xAA);
        _generator.AddMacs(expired);
        Mac2(expired).ToArray().Should().OnlyContain(b => b == 0);
    }

    [Fact]
    public void CheckerSecret_ExpiresAfter120Seconds_AndRotates()
    {
        byte[] firstTrigger = NewMessage();
        _generator.AddMacs(firstTrigger);
        byte[] firstReply = Reply(firstTrigger, Source);
        byte[] firstCookie = OpenReply(firstReply, Mac1(firstTrigger));
        _generator.ConsumeReply(firstReply).Should().BeTrue();

        _time.Advance(TimeSpan.FromSeconds(100));
        byte[] message = NewMessage();
        _generator.AddMacs(message);
        _checker.CheckMac2(message, Source).Should().BeTrue();

        _time.Advance(TimeSpan.FromSeconds(21)); // secret now 121 s old
        _checker.CheckMac2(message, Source).Should().BeFalse("the secret is stale");

        // The next reply rotates the secret: a different cookie for the same source...
        byte[] secondTrigger = NewMessage();
        _generator.AddMacs(secondTrigger);
        byte[] secondReply = Reply(secondTrigger, Source);
        OpenReply(secondReply, Mac1(secondTrigger)).Should().NotEqual(firstCookie);

        // ...so a mac2 made with the old cookie stays refused although the secret is fresh again.
        _checker.CheckMac2(message, Source).Should().BeFalse();

        _generator.ConsumeReply(secondReply).Should().BeTrue();
        byte[] renewed = NewMessage();
        _generator.AddMacs(renewed);
        _checker.CheckMac2(renewed, Source).Should().BeTrue();
    }

    [Fact]
    public void ConcurrentUse_StaysConsistent()
    {
        ObtainCookie(Source);
        byte[][] messages = Enumerable.Range(0, 2000).Select(_ => NewMessage()).ToArray();
        int failures = 0;

        Parallel.For(0, messages.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            byte[] message = messages[i];
            _generator.AddMacs(message);
            if (!_checker.CheckMac1(message) || !_checker.CheckMac2(message, Source))
            {
                Interlocked.Increment(ref failures);
            }
            if (i % 100 == 0)
            {
                _checker.CreateReply(message, 1, Source, new byte[CookieChecker.ReplySize]); // same secret: no rotation
            }
        });

        failures.Should().Be(0);
    }

    [Fact]
    public void Misuse_Throws()
    {
        FluentActions.Invoking(() => _checker.CheckMac1(new byte[31])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => _checker.CheckMac2(new byte[31], Source)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => _generator.AddMacs(new byte[31])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => _checker.CreateReply(NewMessage(), 1, Source, new byte[63])).Should().Throw<ArgumentException>();
        var shared = new byte[InitiationSize + 64];
        FluentActions.Invoking(() => _checker.CreateReply(shared.AsSpan(0, InitiationSize), 1, Source, shared.AsSpan(100, 64)))
            .Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => new CookieChecker(null!, _time)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => new CookieGenerator(_responderKey, null!)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void AfterDispose_MembersThrow_AndDisposeIsIdempotent()
    {
        var checker = new CookieChecker(_responderKey, _time);
        var generator = new CookieGenerator(_responderKey, _time);
        byte[] message = NewMessage();
        generator.AddMacs(message);
        var reply = new byte[64];
        checker.CreateReply(message, 7, Source, reply);

        checker.Dispose();
        generator.Dispose();
        checker.Dispose();
        generator.Dispose();

        FluentActions.Invoking(() => checker.CheckMac1(message)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => checker.CheckMac2(message, Source)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => checker.CreateReply(message, 7, Source, new byte[64])).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => generator.AddMacs(message)).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => generator.ConsumeReply(reply)).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void SteadyState_DoesNotAllocate()
    {
        ObtainCookie(Source);
        byte[] message = NewMessage();
        var reply = new byte[64];
        _generator.AddMacs(message); // warm up
        _checker.CheckMac1(message);
        _checker.CheckMac2(message, Source);
        _checker.CreateReply(message, 1, Source, reply);
        _generator.ConsumeReply(reply);

        AllocationMeter.LeastOf(3, () =>
        {
            for (int i = 0; i < 50; i++)
            {
                _generator.AddMacs(message);
                _checker.CheckMac1(message);
                _checker.CheckMac2(message, Source);
                _checker.CreateReply(message, 1, Source, reply);
                _generator.ConsumeReply(reply);
            }
        }).Should().Be(0);
    }
}
