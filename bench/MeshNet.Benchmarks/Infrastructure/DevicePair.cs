using System.Diagnostics.CodeAnalysis;
using System.Net;
using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.WireGuard;
using MeshNet.Userspace.Net;

namespace MeshNet.Benchmarks.Infrastructure;

/// <summary>
/// Two real <see cref="WireGuardDevice"/>s that are each other's peer, on a shared
/// <see cref="BenchClock"/>, with manual handshake processing (no worker thread): the same
/// single-threaded set-up as the unit tests' DeviceTestBed, but on benchmark binds.
/// The initiator is 192.0.2.1:51820 with tunnel address 10.0.0.1, the responder
/// 192.0.2.2:51820 with 10.0.0.2; each peer's allowed IPs are the other's tunnel /32.
/// </summary>
internal sealed class DevicePair : IDisposable
{
    public static readonly IPAddress InitiatorTunnel = IPAddress.Parse("10.0.0.1");
    public static readonly IPAddress ResponderTunnel = IPAddress.Parse("10.0.0.2");
    public static readonly IPEndPoint InitiatorAddress = IPEndPoint.Parse("192.0.2.1:51820");
    public static readonly IPEndPoint ResponderAddress = IPEndPoint.Parse("192.0.2.2:51820");

    public DevicePair(BenchClock clock, IUdpBind initiatorBind, IUdpBind responderBind,
        IPacketSink? initiatorSink = null, IPacketSink? responderSink = null)
    {
        Clock = clock;
        Initiator = Start(clock, initiatorBind, initiatorSink ?? new DiscardSink(), (ushort)InitiatorAddress.Port);
        Responder = Start(clock, responderBind, responderSink ?? new DiscardSink(), (ushort)ResponderAddress.Port);
        Initiator.SetPeer(new WireGuardPeerConfig(Responder.PublicKey)
        {
            Endpoint = ResponderAddress,
            AllowedIps = [new IPNetwork(ResponderTunnel, 32)],
        });
        Responder.SetPeer(new WireGuardPeerConfig(Initiator.PublicKey)
        {
            Endpoint = InitiatorAddress,
            AllowedIps = [new IPNetwork(InitiatorTunnel, 32)],
        });
        ResponderOnInitiator = Initiator.LookupPeer(Responder.PublicKey) ?? throw new InvalidOperationException("Peer missing.");
        InitiatorOnResponder = Responder.LookupPeer(Initiator.PublicKey) ?? throw new InvalidOperationException("Peer missing.");
    }

    public BenchClock Clock { get; }

    public WireGuardDevice Initiator { get; }

    public WireGuardDevice Responder { get; }

    /// <summary>The initiator's peer object for the responder.</summary>
    internal Peer ResponderOnInitiator { get; }

    /// <summary>The responder's peer object for the initiator.</summary>
    internal Peer InitiatorOnResponder { get; }

    /// <summary>The initiator's address as the responder sees it (the source of its datagrams).</summary>
    public static NetEndpoint InitiatorEndpoint => NetEndpoint.FromIPEndPoint(InitiatorAddress);

    /// <summary>The responder's address as the initiator sees it.</summary>
    public static NetEndpoint ResponderEndpoint => NetEndpoint.FromIPEndPoint(ResponderAddress);

    /// <summary>
    /// One complete handshake through the devices' own handshake code (no bind, no queue):
    /// initiation + MACs, mac1 check + ConsumeInitiation, response + MACs, BeginSymmetricSession
    /// on the responder, mac1 check + ConsumeResponse, BeginSymmetricSession on the initiator.
    /// The initiator's new session is current at once; the responder's waits in "next" for key
    /// confirmation (the first transport message from the initiator). Throws on any failure.
    /// </summary>
    /// <remarks>
    /// The responder rejects an initiation whose TAI64N timestamp is not newer than the last
    /// (2^24 ns granularity) or that comes within 20 ms of the previous one: the caller
    /// advances <see cref="Clock"/> between handshakes.
    /// </remarks>
    public void HandshakeThroughProtocol()
    {
        Span<byte> initiation = stackalloc byte[WireGuardProtocol.InitiationSize];
        Span<byte> response = stackalloc byte[WireGuardProtocol.ResponseSize];
        var initiator = Initiator.Context;
        var responder = Responder.Context;

        if (!initiator.Handshakes.CreateInitiation(ResponderOnInitiator, initiation))
        {
            Fail("CreateInitiation failed");
        }
        ResponderOnInitiator.CookieGenerator.AddMacs(initiation);

        if (!responder.CookieChecker.CheckMac1(initiation))
        {
            Fail("mac1 of the initiation rejected");
        }
        var initiatorPeer = responder.Handshakes.ConsumeInitiation(initiation, out var reason);
        if (initiatorPeer is null)
        {
            Fail($"ConsumeInitiation failed: {reason}");
        }
        if (!responder.Handshakes.CreateResponse(initiatorPeer, response))
        {
            Fail("CreateResponse failed");
        }
        initiatorPeer.CookieGenerator.AddMacs(response);
        if (!responder.Handshakes.BeginSymmetricSession(initiatorPeer))
        {
            Fail("BeginSymmetricSession (responder) failed");
        }

        if (!initiator.CookieChecker.CheckMac1(response))
        {
            Fail("mac1 of the response rejected");
        }
        var responderPeer = initiator.Handshakes.ConsumeResponse(response, out var completed, out reason);
        if (responderPeer is null)
        {
            Fail($"ConsumeResponse failed: {reason}");
        }
        if (!initiator.Handshakes.BeginSymmetricSession(responderPeer, completed))
        {
            Fail("BeginSymmetricSession (initiator) failed");
        }
    }

    /// <summary>Throws when either device counted a drop: a benchmark that silently drops measures nothing.</summary>
    public void ThrowIfDropped()
    {
        if (Initiator.Counters.TotalDropped != 0 || Responder.Counters.TotalDropped != 0)
        {
            Fail($"drops: initiator [{Initiator.Counters}] responder [{Responder.Counters}]");
        }
    }

    [DoesNotReturn]
    public static void Fail(string message) => throw new InvalidOperationException("Benchmark set-up broken: " + message);

    public void Dispose()
    {
        Initiator.Dispose();
        Responder.Dispose();
    }

    private static WireGuardDevice Start(BenchClock clock, IUdpBind bind, IPacketSink sink, ushort port)
    {
        using var key = WireGuardPrivateKey.Generate();
        var options = new WireGuardDeviceOptions
        {
            PrivateKey = key,
            Bind = bind,
            InboundSink = sink,
            ListenPort = port,
            TimeProvider = clock,
            ManualHandshakeProcessing = true,
        };
        return WireGuardDevice.StartAsync(options).AsTask().GetAwaiter().GetResult();
    }
}
