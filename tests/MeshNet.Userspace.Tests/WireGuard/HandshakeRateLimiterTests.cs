using MeshNet.TestSupport;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.WireGuard;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.WireGuard;

/// <summary>
/// The sequence of wireguard-go ratelimiter/ratelimiter_test.go, with the sleeps replaced by a
/// fake clock: every step is applied to every address in turn, at the same instant.
/// </summary>
[Trait("Category", "Vectors")]
public sealed class HandshakeRateLimiterTests
{
    private static readonly TimeSpan PacketTime = TimeSpan.FromSeconds(1) / HandshakeRateLimiter.PacketsPerSecond;

    private static readonly string[] IPv4Sources =
    [
        "127.0.0.1", "192.168.1.1", "172.167.2.3", "97.231.252.215",
        "248.97.91.167", "188.208.233.47", "104.2.183.179", "72.129.46.120",
    ];

    private static readonly string[] IPv6Sources =
    [
        "2001:0db8:0a0b:12f0:0000:0000:0000:0001", "f5c2:818f:c052:655a:9860:b136:6894:25f0",
        "b2d7:15ab:48a7:b07c:a541:f144:a9fe:54fc", "a47b:786e:1671:a22b:d6f9:4ab0:abc7:c918",
        "ea1e:d155:7f7a:98fb:2bf5:9483:80f6:5445", "3f0e:54a2:f5b4:cd19:a21d:58e1:3746:84c4",
    ];

    public static TheoryData<string> Families => new() { "IPv4", "IPv6", "both" };

    [Theory]
    [MemberData(nameof(Families))]
    public void Sequence_EveryStep(string family)
    {
        string[] addresses = family switch
        {
            "IPv4" => IPv4Sources,
            "IPv6" => IPv6Sources,
            _ => [.. IPv4Sources, .. IPv6Sources],
        };
        var sources = addresses.Select(a => NetEndpoint.FromIPEndPoint(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(a), 51820))).ToArray();

        var steps = new List<(bool Allowed, TimeSpan Wait, string Text)>();
        for (int i = 0; i < HandshakeRateLimiter.PacketsBurstable; i++)
        {
            steps.Add((true, TimeSpan.Zero, "initial burst"));
        }
        steps.Add((false, TimeSpan.Zero, "after burst"));
        steps.Add((true, PacketTime, "filling tokens for single packet"));
        steps.Add((false, TimeSpan.Zero, "not having refilled enough"));
        steps.Add((true, 2 * PacketTime, "filling tokens for two packet burst"));
        steps.Add((true, TimeSpan.Zero, "second packet in 2 packet burst"));
        steps.Add((false, TimeSpan.Zero, "packet following 2 packet burst"));

        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        for (int i = 0; i < steps.Count; i++)
        {
            var (allowed, wait, text) = steps[i];
            time.Advance(wait);
            foreach (var source in sources)
            {
                limiter.Allow(source).Should().Be(allowed, "step {0} ({1}) for {2}", i, text, source);
            }
        }
        limiter.Count.Should().Be(sources.Length);
    }
}

[Trait("Category", "Unit")]
public sealed class HandshakeRateLimiterUnitTests
{
    private static NetEndpoint Ep(string text) => NetEndpoint.Parse(text);

    private static void Exhaust(HandshakeRateLimiter limiter, NetEndpoint source)
    {
        while (limiter.Allow(source))
        {
        }
    }

    [Fact]
    public void Port_DoesNotMatter()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        Exhaust(limiter, Ep("198.51.100.7:1000"));
        limiter.Allow(Ep("198.51.100.7:2000")).Should().BeFalse();
        limiter.Allow(Ep("198.51.100.8:1000")).Should().BeTrue("a different IPv4 address has its own bucket");
    }

    [Fact]
    public void IPv6_GroupedBySlash64()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        Exhaust(limiter, Ep("[2001:db8:1:2::1]:51820"));
        limiter.Allow(Ep("[2001:db8:1:2:ffff:ffff:ffff:ffff]:51820")).Should().BeFalse("same /64");
        limiter.Allow(Ep("[2001:db8:1:2:1234::5]:4")).Should().BeFalse("same /64");
        limiter.Allow(Ep("[2001:db8:1:3::1]:51820")).Should().BeTrue("a different /64");
        limiter.Allow(Ep("[2001:db9:1:2::1]:51820")).Should().BeTrue("a different /64");
        limiter.Count.Should().Be(3);
    }

    [Fact]
    public void IPv4_AndIPv6_KeysNeverCollide()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        Exhaust(limiter, Ep("0.0.0.1:1"));
        limiter.Allow(Ep("[::]:1")).Should().BeTrue();
        limiter.Allow(Ep("[::1]:1")).Should().BeTrue();
        limiter.Allow(Ep("[::ffff:0.0.0.1]:1")).Should().BeFalse("an IPv4-mapped address is that IPv4 source");
    }

    [Fact]
    public void Bucket_RefillsAtTwentyPerSecond_UpToBurst()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        var source = Ep("203.0.113.1:1");
        int allowed = 0;
        for (int ms = 0; ms < 10_000; ms += 10)
        {
            if (limiter.Allow(source))
            {
                allowed++;
            }
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        allowed.Should().Be(HandshakeRateLimiter.PacketsBurstable + 20 * 10 - 1, "the burst, then one per 50 ms over the remaining 9.95 s");

        time.Advance(TimeSpan.FromHours(1));
        int burst = 0;
        while (limiter.Allow(source))
        {
            burst++;
        }
        burst.Should().Be(HandshakeRateLimiter.PacketsBurstable, "a long idle period refills to the burst, not beyond");
    }

    [Fact]
    public void IdleEntries_AreCollected_ThenTheCollectorRearms()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        limiter.Allow(Ep("192.0.2.1:1")).Should().BeTrue();
        limiter.Allow(Ep("[2001:db8::1]:1")).Should().BeTrue();
        limiter.Count.Should().Be(2);

        time.Advance(TimeSpan.FromSeconds(1));
        limiter.Count.Should().Be(2, "idle for exactly the limit, not more");
        time.Advance(TimeSpan.FromSeconds(1));
        limiter.Count.Should().Be(0);

        // The timer went quiet on an empty table; a new source must re-arm it.
        time.Advance(TimeSpan.FromSeconds(10));
        limiter.Allow(Ep("192.0.2.2:1")).Should().BeTrue();
        limiter.Count.Should().Be(1);
        time.Advance(TimeSpan.FromSeconds(3));
        limiter.Count.Should().Be(0);
    }

    [Fact]
    public void ActiveEntries_AreKept()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        var active = Ep("192.0.2.1:1");
        limiter.Allow(active);
        limiter.Allow(Ep("192.0.2.99:1"));
        for (int i = 0; i < 10; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            limiter.Allow(active).Should().BeTrue();
        }
        limiter.Count.Should().Be(1, "only the idle source was collected");
    }

    [Fact]
    public void FullTable_RefusesUnknownSources_KeepsKnownOnes()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time, capacity: 4);
        for (int i = 1; i <= 4; i++)
        {
            limiter.Allow(Ep($"192.0.2.{i}:1")).Should().BeTrue();
        }
        limiter.Allow(Ep("192.0.2.5:1")).Should().BeFalse("the table is full");
        limiter.Allow(Ep("[2001:db8::5]:1")).Should().BeFalse("the table is full");
        limiter.Allow(Ep("192.0.2.1:1")).Should().BeTrue("known sources keep their buckets");
        limiter.Count.Should().Be(4);

        time.Advance(TimeSpan.FromSeconds(2.5));
        limiter.Count.Should().Be(0);
        limiter.Allow(Ep("192.0.2.5:1")).Should().BeTrue("collection made room");
    }

    [Fact]
    public void ConcurrentFirstSight_OfOneSource_GrantsExactlyTheBurst()
    {
        var time = new FakeTimeProvider(); // frozen: no refill during the test
        using var limiter = new HandshakeRateLimiter(time);
        var source = Ep("198.51.100.1:1");
        int allowed = 0;
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            for (int i = 0; i < 2_000; i++)
            {
                if (limiter.Allow(source))
                {
                    Interlocked.Increment(ref allowed);
                }
            }
        });
        allowed.Should().Be(HandshakeRateLimiter.PacketsBurstable);
        limiter.Count.Should().Be(1);
    }

    [Fact]
    public void ConcurrentNewSources_NeverExceedCapacity()
    {
        var time = new FakeTimeProvider();
        const int capacity = 100;
        using var limiter = new HandshakeRateLimiter(time, capacity);
        int firstPacketsAllowed = 0;
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
        {
            for (int i = 0; i < 1_000; i++)
            {
                // Workers overlap on half of their sources, so insertions race.
                int n = (worker % 2) * 500 + i;
                var source = NetEndpoint.FromAddressBytes([10, 0, (byte)(n >> 8), (byte)n], 1);
                if (limiter.Allow(source))
                {
                    Interlocked.Increment(ref firstPacketsAllowed);
                }
                limiter.Count.Should().BeLessThanOrEqualTo(capacity);
            }
        });
        limiter.Count.Should().Be(capacity);
        firstPacketsAllowed.Should().BeGreaterThanOrEqualTo(capacity);
    }

    [Fact]
    public void KnownSource_DoesNotAllocate()
    {
        var time = new FakeTimeProvider();
        using var limiter = new HandshakeRateLimiter(time);
        var v4 = Ep("192.0.2.1:1");
        var v6 = Ep("[2001:db8::1]:1");
        for (int i = 0; i < 100; i++)
        {
            limiter.Allow(v4);
            limiter.Allow(v6);
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        AllocationMeter.LeastOf(3, () =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                limiter.Allow(v4);
                limiter.Allow(v6);
            }
        }).Should().Be(0, "checking known sources allocates nothing");
    }

    [Fact]
    public void Dispose_RefusesEverything_AndIsIdempotent()
    {
        var time = new FakeTimeProvider();
        var limiter = new HandshakeRateLimiter(time);
        limiter.Allow(Ep("192.0.2.1:1")).Should().BeTrue();
        limiter.Dispose();
        limiter.Dispose();
        limiter.Allow(Ep("192.0.2.1:1")).Should().BeFalse();
        limiter.Allow(Ep("192.0.2.2:1")).Should().BeFalse();
        limiter.Count.Should().Be(0);
        time.Advance(TimeSpan.FromSeconds(5)); // no timer callback runs on a disposed limiter
    }

    [Fact]
    public void Constructor_ValidatesArguments()
    {
        FluentActions.Invoking(() => new HandshakeRateLimiter(null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => new HandshakeRateLimiter(new FakeTimeProvider(), 0)).Should().Throw<ArgumentOutOfRangeException>();
    }
}
