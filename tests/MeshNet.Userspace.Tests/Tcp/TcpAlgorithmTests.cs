using MeshNet.Userspace.Stack.Tcp;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Tcp;

/// <summary>The algorithms on their own, against the RFC formulas: NewReno, CUBIC, the RTO estimator, SYN cookies, SipHash.</summary>
[Trait("Category", "Unit")]
public sealed class TcpAlgorithmTests
{
    [Theory]
    [InlineData(536, 5360)]
    [InlineData(1380, 13800)]
    [InlineData(1460, 14600)]
    [InlineData(9000, 18000)]
    public void TheInitialWindowFollowsRfc6928(int mss, long window) => CongestionControl.InitialWindow(mss).Should().Be(window);

    [Fact]
    public void NewRenoSlowStartGrowsByAtMostTwoSegmentsPerAck()
    {
        var cc = new NewRenoCongestionControl(1000);
        cc.Cwnd.Should().Be(10_000);
        cc.OnAck(1000, 0, 0, cwndLimited: true);
        cc.Cwnd.Should().Be(11_000);
        cc.OnAck(5000, 0, 0, cwndLimited: true);
        cc.Cwnd.Should().Be(13_000, "appropriate byte counting with L = 2 (RFC 3465)");
        cc.OnAck(1000, 0, 0, cwndLimited: false);
        cc.Cwnd.Should().Be(13_000, "not cwnd-limited: no growth (RFC 7661)");
    }

    [Fact]
    public void NewRenoCongestionAvoidanceAddsOneSegmentPerWindow()
    {
        var cc = new NewRenoCongestionControl(1000) { SsThresh = 10_000 };
        for (int i = 0; i < 9; i++)
        {
            cc.OnAck(1000, 0, 0, true);
        }
        cc.Cwnd.Should().Be(10_000);
        cc.OnAck(1000, 0, 0, true);
        cc.Cwnd.Should().Be(11_000);
    }

    [Fact]
    public void NewRenoSlowStartStopsAtSsThresh()
    {
        var cc = new NewRenoCongestionControl(1000) { SsThresh = 10_500 };
        cc.OnAck(1000, 0, 0, true);
        cc.Cwnd.Should().Be(10_500);
        cc.InSlowStart.Should().BeFalse();
    }

    [Fact]
    public void NewRenoHalvesTheFlightOnCongestionAndFallsToOneSegmentOnTimeout()
    {
        var cc = new NewRenoCongestionControl(1000);
        cc.OnCongestionEvent(0, 20_000);
        cc.SsThresh.Should().Be(10_000);
        cc.OnCongestionEvent(0, 3_000);
        cc.SsThresh.Should().Be(2_000, "never below 2 MSS");
        cc.OnRetransmissionTimeout(0, 30_000);
        cc.SsThresh.Should().Be(15_000);
        cc.Cwnd.Should().Be(1000);
    }

    [Fact]
    public void CongestionWindowArithmeticCannotOverflow()
    {
        foreach (CongestionControl cc in new CongestionControl[] { new NewRenoCongestionControl(1000), new CubicCongestionControl(1000) })
        {
            for (int i = 0; i < 100; i++)
            {
                cc.OnAck(long.MaxValue, long.MaxValue / 2, long.MaxValue / 4, true);
            }
            cc.Cwnd.Should().BeInRange(1000, CongestionControl.MaxCwnd);
            cc.SsThresh = 5000;
            for (int i = 0; i < 100; i++)
            {
                cc.OnAck(long.MaxValue, i * 1_000_000_000L, 1_000_000, true);
            }
            cc.Cwnd.Should().BeInRange(1000, CongestionControl.MaxCwnd);
            cc.Cwnd = long.MaxValue;
            cc.Cwnd.Should().Be(CongestionControl.MaxCwnd);
            cc.Cwnd = -5;
            cc.Cwnd.Should().Be(1000);
        }
    }

    private static CubicCongestionControl CubicAfterLoss(int mss, int windowSegments)
    {
        var cc = new CubicCongestionControl(mss) { Cwnd = (long)windowSegments * mss, SsThresh = (long)windowSegments * mss };
        cc.OnCongestionEvent(0, cc.Cwnd);
        cc.Cwnd = cc.SsThresh;
        cc.OnRecoveryEnd(0);
        return cc;
    }

    [Fact]
    public void CubicReducesToSevenTenthsAndComputesK()
    {
        var cc = CubicAfterLoss(1000, 100);
        cc.SsThresh.Should().Be(70_000, "ssthresh = 0.7 cwnd (RFC 9438 §4.6)");
        cc.WMax.Should().Be(100);
        cc.OnAck(1000, 1_000_000, 100_000, true);
        cc.K.Should().BeApproximately(Math.Cbrt((100 - 70) / 0.4), 1e-9, "K = cbrt((W_max - cwnd_epoch) / C), RFC 9438 eq. 2");
        cc.W(0).Should().BeApproximately(70, 1e-9);
        cc.W(cc.K).Should().BeApproximately(100, 1e-9);
    }

    [Fact]
    public void CubicRegainsWMaxAfterKSeconds()
    {
        var cc = CubicAfterLoss(1000, 100);
        long rtt = 100_000;
        long start = 10_000_000;
        long t = start;
        double k = Math.Cbrt(30 / 0.4);
        while (t - start < (long)(k * 1e6))
        {
            cc.OnAck(cc.Cwnd, t, rtt, true); // one window per RTT: cwnd moves to W(t + RTT), clamped to 1.5 cwnd
            t += rtt;
        }
        (cc.Cwnd / 1000.0).Should().BeApproximately(100, 3, "the window is back at W_max after K seconds (concave region)");
        double before = cc.Cwnd;
        for (int i = 0; i < 20; i++)
        {
            cc.OnAck(cc.Cwnd, t, rtt, true);
            t += rtt;
        }
        ((cc.Cwnd - before) / 1000).Should().BeGreaterThan(1, "then it probes beyond W_max (convex region)");
    }

    [Fact]
    public void CubicFollowsTheRenoFriendlyEstimateOnShortRtts()
    {
        var cc = CubicAfterLoss(1000, 100);
        long rtt = 1000;
        long t = 0;
        for (int i = 0; i < 1000; i++)
        {
            cc.OnAck(cc.Cwnd, t, rtt, true);
            t += rtt;
        }
        double wCubic = cc.W(1.0);
        (cc.Cwnd / 1000.0).Should().BeGreaterThan(wCubic, "Reno-friendly region: W_est exceeds W_cubic");
        (cc.Cwnd / 1000.0).Should().BeApproximately(cc.WEst, 1);
        double expected = 100 + (1000 - ((100 - 70) / CubicCongestionControl.AlphaReno)); // alpha, then 1 once past cwnd_prior
        cc.WEst.Should().BeApproximately(expected, 3);
    }

    [Fact]
    public void CubicFastConvergenceLowersWMaxWhenTheWindowDidNotRegainIt()
    {
        var cc = CubicAfterLoss(1000, 100);
        cc.Cwnd = 80_000;
        cc.OnCongestionEvent(0, 80_000);
        cc.WMax.Should().BeApproximately(80 * (1 + 0.7) / 2, 1e-9);
        cc.SsThresh.Should().Be(56_000);
    }

    [Fact]
    public void UndoRestoresWindowThresholdAndCubicState()
    {
        var cc = new CubicCongestionControl(1000) { Cwnd = 100_000, SsThresh = 200_000 };
        cc.SaveUndo();
        cc.OnCongestionEvent(0, 100_000);
        cc.Cwnd = cc.SsThresh;
        cc.Undo();
        cc.Cwnd.Should().Be(100_000);
        cc.SsThresh.Should().Be(200_000);
        cc.WMax.Should().Be(0);
    }

    [Fact]
    public void RttEstimationFollowsRfc6298()
    {
        var rtt = new RttEstimator();
        rtt.Rto.Should().Be(1_000_000, "1 s before any sample");
        rtt.Sample(100_000, 0);
        (rtt.Srtt, rtt.RttVar, rtt.Rto).Should().Be((100_000L, 50_000L, 300_000L), "SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR)");
        rtt.Sample(200_000, 1);
        rtt.RttVar.Should().Be(62_500, "3/4 x 50 + 1/4 x |100 - 200|");
        rtt.Srtt.Should().Be(112_500, "7/8 x 100 + 1/8 x 200");
        rtt.Rto.Should().Be(112_500 + 250_000);
        rtt.Backoff = 3;
        rtt.Rto.Should().Be(8 * 362_500);
        rtt.Backoff = 30;
        rtt.Rto.Should().Be(RttEstimator.MaxRto, "capped at 120 s");
    }

    [Fact]
    public void TheRtoNeverFallsBelow200Milliseconds()
    {
        var rtt = new RttEstimator();
        for (int i = 0; i < 50; i++)
        {
            rtt.Sample(100, i);
        }
        rtt.Rto.Should().Be(100 + 200_000);
        rtt.MinRtt.Should().Be(100);
    }

    [Fact]
    public void SynCookiesRoundTripAndExpireAfterTwoMinutes()
    {
        var time = new FakeTimeProvider();
        var cookies = new SynCookies(new SipHash(1, 2), new SipHash(3, 4), time);
        var key = new TcpFlowKey(TcpHarness.LocalAddress, 80, TcpHarness.RemoteAddress, 40000);
        for (int index = 0; index < SynCookies.MssTable.Length; index++)
        {
            uint iss = cookies.Encode(key, 12345, index);
            cookies.Check(key, 12345, iss).Should().Be(index);
            cookies.Check(key, 12345 + 0x00300000, iss).Should().Be(-1, "another SYN's sequence number");
            cookies.Check(new TcpFlowKey(TcpHarness.LocalAddress, 80, TcpHarness.RemoteAddress, 40001), 12345, iss).Should().Be(-1);
            cookies.Check(key, 12345, iss ^ 0x00F00000).Should().Be(-1, "a forged cookie");
        }
        uint old = cookies.Encode(key, 1, 3);
        time.Advance(TimeSpan.FromSeconds(119));
        cookies.Check(key, 1, old).Should().Be(3, "still valid within two minutes (minute granularity)");
        time.Advance(TimeSpan.FromSeconds(61));
        cookies.Check(key, 1, old).Should().Be(-1);
        SynCookies.MssIndex(1460).Should().Be(5);
        SynCookies.MssIndex(1400).Should().Be(3);
        SynCookies.MssIndex(100).Should().Be(0);
    }

    [Fact]
    public void CookieTimestampsCarryWindowScaleAndSackWithoutGoingAheadOfTheClock()
    {
        for (uint now = 1000; now < 1200; now += 7)
        {
            uint ts = SynCookies.EncodeTimestamp(now, 9, true);
            TcpSeq.Le(ts, now).Should().BeTrue();
            (now - ts).Should().BeLessThan(128);
            SynCookies.DecodeTimestamp(ts).Should().Be((9, true));
            SynCookies.DecodeTimestamp(SynCookies.EncodeTimestamp(now, -1, false)).Should().Be((-1, false));
        }
    }

    [Fact]
    public void SipHashMatchesTheReferenceVector()
    {
        // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e.
        var hash = new SipHash(0x0706050403020100UL, 0x0F0E0D0C0B0A0908UL);
        var message = Enumerable.Range(0, 15).Select(i => (byte)i).ToArray();
        hash.Hash(message).Should().Be(0xA129CA6149BE45E5UL);
        hash.Hash([]).Should().Be(0x726FDB47DD0E0E31UL);
    }
}
