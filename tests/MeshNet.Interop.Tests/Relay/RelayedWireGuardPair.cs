using System.Net;
using System.Net.Sockets;
using MeshNet.TestSupport.Impairment;
using MeshNet.TestSupport.Interop;

namespace MeshNet.Interop.Tests.Relay;

/// <summary>
/// The interop topology without MeshNet: two wireguard-go peers in their own namespaces whose
/// encrypted datagrams pass through an <see cref="ImpairmentRelay"/> bound in a third namespace
/// (sockets created there with <see cref="NamespaceSockets"/>), so Linux TCP between A and B
/// runs over WireGuard through the impairments.
/// <code>
///   ns A: wireguard-go (10.78.0.1, fd78::1) ─veth─ ns R: relay side A | relay side B ─veth─ ns B: wireguard-go (10.78.0.2, fd78::2)
/// </code>
/// Disposal removes the relay, both wireguard-go processes, the veth pairs and the namespaces.
/// </summary>
internal sealed class RelayedWireGuardPair : IAsyncDisposable
{
    public static readonly IPAddress AddressA = IPAddress.Parse("10.78.0.1");
    public static readonly IPAddress AddressB = IPAddress.Parse("10.78.0.2");
    public static readonly IPAddress AddressA6 = IPAddress.Parse("fd78::1");
    public static readonly IPAddress AddressB6 = IPAddress.Parse("fd78::2");

    private readonly List<IAsyncDisposable> _resources = [];

    private RelayedWireGuardPair()
    {
    }

    public NetworkNamespace NamespaceA { get; private set; } = null!;

    public NetworkNamespace NamespaceB { get; private set; } = null!;

    public NetworkNamespace RelayNamespace { get; private set; } = null!;

    public WireGuardGoPeer PeerA { get; private set; } = null!;

    public WireGuardGoPeer PeerB { get; private set; } = null!;

    public ImpairmentRelay Relay { get; private set; } = null!;

    /// <summary>Builds the topology with a clean relay and waits for the handshake (a ping from A to B).</summary>
    public static async Task<RelayedWireGuardPair> StartAsync(int seed = 1, CancellationToken cancellationToken = default)
    {
        Prerequisites.Require("ip", "wg", "wireguard-go", "ping");
        var pair = new RelayedWireGuardPair();
        try
        {
            pair.NamespaceA = await pair.AddAsync(NetworkNamespace.CreateAsync(cancellationToken));
            pair.NamespaceB = await pair.AddAsync(NetworkNamespace.CreateAsync(cancellationToken));
            pair.RelayNamespace = await pair.AddAsync(NetworkNamespace.CreateAsync(cancellationToken));
            var left = await pair.AddAsync(VethPair.CreateAsync(pair.NamespaceA, pair.RelayNamespace, cancellationToken));
            var right = await pair.AddAsync(VethPair.CreateAsync(pair.RelayNamespace, pair.NamespaceB, cancellationToken));
            pair.PeerA = await pair.AddAsync(WireGuardGoPeer.StartAsync(pair.NamespaceA, new WireGuardGoPeerOptions { Addresses = [$"{AddressA}/24", $"{AddressA6}/64"] }, cancellationToken));
            pair.PeerB = await pair.AddAsync(WireGuardGoPeer.StartAsync(pair.NamespaceB, new WireGuardGoPeerOptions { Addresses = [$"{AddressB}/24", $"{AddressB6}/64"] }, cancellationToken));
            await WireGuardGoTuning.ApplyAsync(pair.PeerA, cancellationToken);
            await WireGuardGoTuning.ApplyAsync(pair.PeerB, cancellationToken);

            var sideA = Bind(pair.RelayNamespace, left.B.IPv4);
            Socket sideB;
            try
            {
                sideB = Bind(pair.RelayNamespace, right.A.IPv4);
            }
            catch
            {
                sideA.Dispose();
                throw;
            }
            pair.Relay = ImpairmentRelay.Start(sideA, sideB, new ImpairmentRelayOptions
            {
                PeerA = new IPEndPoint(left.A.IPv4, pair.PeerA.ListenPort),
                PeerB = new IPEndPoint(right.B.IPv4, pair.PeerB.ListenPort),
                Seed = seed,
            });
            var relay = pair.Relay;
            pair._resources.Add(new DisposeAction(relay.Dispose));

            await pair.PeerB.SetPeerAsync(pair.PeerA.PublicKey, relay.EndPointB.ToString(), [$"{AddressA}/32", $"{AddressA6}/128"], cancellationToken: cancellationToken);
            await pair.PeerA.SetPeerAsync(pair.PeerB.PublicKey, relay.EndPointA.ToString(), [$"{AddressB}/32", $"{AddressB6}/128"], cancellationToken: cancellationToken);
            await pair.PeerA.PingAsync(AddressB, TimeSpan.FromSeconds(20), cancellationToken);
            return pair;
        }
        catch
        {
            await pair.DisposeAsync();
            throw;
        }
    }

    /// <summary>Applies <paramref name="profile"/> to both directions of the relay.</summary>
    public void Impair(ImpairmentProfile profile) => Relay.Impair(profile, profile);

    public async ValueTask DisposeAsync()
    {
        for (int i = _resources.Count - 1; i >= 0; i--)
        {
            try
            {
                await _resources[i].DisposeAsync();
            }
            catch (Exception)
            {
                // Keep tearing down the rest; the leftover sweeper reports anything missed.
            }
        }
        _resources.Clear();
    }

    private async Task<T> AddAsync<T>(Task<T> creation) where T : IAsyncDisposable
    {
        var resource = await creation;
        _resources.Add(resource);
        return resource;
    }

    private static Socket Bind(NetworkNamespace ns, IPAddress address)
    {
        var socket = NamespaceSockets.Create(ns, address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(address, 0));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
