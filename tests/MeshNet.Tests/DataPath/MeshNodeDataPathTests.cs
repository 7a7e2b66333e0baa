using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshNet.Tests.Support;

namespace MeshNet.Tests.DataPath;

/// <summary>
/// The node's data path end to end over real WireGuard on loopback UDP, with netmaps written
/// by the test: dial by name and address, identities, errors, live reconfiguration, UDP,
/// status and disposal. (The control client is covered elsewhere; the coordination service
/// end to end in MeshNet.Integration.Tests.)
/// </summary>
[Trait("Category", "Unit")]
public sealed class MeshNodeDataPathTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private DetachedMesh _mesh = null!;

    private MeshNode Web => _mesh[0];

    private MeshNode Client => _mesh[1];

    private MeshNode Other => _mesh[2];

    public async Task InitializeAsync() =>
        _mesh = await DetachedMesh.StartAsync(("web", ["tag:web"]), ("client", []), ("other", []));

    public async Task DisposeAsync() => await _mesh.DisposeAsync();

    private static async Task<string> ExchangeAsync(MeshConnection from, MeshConnection to, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        await from.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
        var buffer = new byte[bytes.Length];
        await to.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
        return Encoding.UTF8.GetString(buffer);
    }

    [Theory]
    [InlineData("web")]
    [InlineData("WEB.acme.meshnet.internal.")]
    [InlineData("100.64.0.1")]
    public async Task DialByNameOrAddressAndTalkBothWays(string host)
    {
        await using var listener = await Web.ListenAsync(8080);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await Client.DialAsync(host, 8080).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);

        (await ExchangeAsync(dialed, accepted, "hello web")).Should().Be("hello web");
        (await ExchangeAsync(accepted, dialed, "hello client")).Should().Be("hello client");

        dialed.RemoteEndPoint.Should().Be(new IPEndPoint(TestNodes.V4(1), 8080));
        dialed.LocalEndPoint.Address.Should().Be(TestNodes.V4(2));
        dialed.Peer.Name.Should().Be("web");
        dialed.Peer.Fqdn.Should().Be("web.acme.meshnet.internal");
        dialed.Peer.NodeId.Should().Be(1UL);
        dialed.Peer.HasTag("tag:web").Should().BeTrue();
        dialed.Peer.PublicKey.Should().Be(Web.PublicKey);

        accepted.Peer.Name.Should().Be("client", "the listener names the node that connected");
        accepted.Peer.Addresses.Should().Equal(TestNodes.V4(2), TestNodes.V6(2));
        accepted.Peer.Tags.Should().BeEmpty();
        accepted.RemoteEndPoint.Should().Be(dialed.LocalEndPoint);
    }

    [Fact]
    public async Task IPv6LiteralsDialOverIPv6AndTheListenerTakesBothFamilies()
    {
        await using var listener = await Web.ListenAsync(0);
        listener.Port.Should().BeGreaterThan(0);
        listener.LocalEndPoints.Should().Equal(new IPEndPoint(IPAddress.Any, listener.Port), new IPEndPoint(IPAddress.IPv6Any, listener.Port));

        var accept6 = listener.AcceptAsync().AsTask();
        await using var v6 = await Client.DialAsync("fd7a:115c:a1e0::1", listener.Port).AsTask().WaitAsync(Timeout);
        await using var accepted6 = await accept6.WaitAsync(Timeout);
        v6.RemoteEndPoint.AddressFamily.Should().Be(AddressFamily.InterNetworkV6);
        accepted6.Peer.Name.Should().Be("client");

        var accept4 = listener.AcceptAsync().AsTask();
        await using var v4 = await Client.DialAsync(new IPEndPoint(TestNodes.V4(1), listener.Port)).AsTask().WaitAsync(Timeout);
        await using var accepted4 = await accept4.WaitAsync(Timeout);
        accepted4.RemoteEndPoint.AddressFamily.Should().Be(AddressFamily.InterNetwork);
        (await ExchangeAsync(v4, accepted4, "four")).Should().Be("four");
        (await ExchangeAsync(accepted6, v6, "six")).Should().Be("six");
    }

    [Fact]
    public async Task DialErrorsCarryPreciseCodes()
    {
        async Task<MeshErrorCode> Fails(Func<Task> dial) => (await dial.Should().ThrowAsync<MeshException>()).Which.ErrorCode;

        (await Fails(() => Client.DialAsync("nobody", 80).AsTask())).Should().Be(MeshErrorCode.PeerNotFound);
        (await Fails(() => Client.DialAsync("web.other.domain", 80).AsTask())).Should().Be(MeshErrorCode.PeerNotFound);
        (await Fails(() => Client.DialAsync("100.64.0.99", 80).AsTask())).Should().Be(MeshErrorCode.PeerNotFound);
        (await Fails(() => Client.DialAsync("web", 9).AsTask().WaitAsync(Timeout))).Should().Be(MeshErrorCode.ConnectionRefused);
        (await Fails(() => Client.DialAsync("client", 80).AsTask())).Should().Be(MeshErrorCode.HostUnreachable, "a node does not dial itself");
        Client.Invoking(c => c.ResolveAddresses("nobody")).Should().Throw<MeshException>().Which.ErrorCode.Should().Be(MeshErrorCode.PeerNotFound);
        Client.ResolveAddresses("web").Should().Equal(TestNodes.V4(1), TestNodes.V6(1));

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Client.Invoking(c => c.DialAsync("web", 80, cancelled.Token).AsTask()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task AnExpiredPeerIsUnreachable()
    {
        _mesh.SetKeyExpiry(Web, DateTimeOffset.UtcNow.AddMinutes(-1));
        _mesh.Publish();
        var error = (await Client.Invoking(c => c.DialAsync("web", 80).AsTask()).Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.HostUnreachable);
        error.Message.Should().Contain("expired");
        Client.GetStatus().Peers.Single(p => p.Name == "web").Configured.Should().BeFalse();
    }

    [Fact]
    public async Task NetmapChangesToOtherPeersLeaveAnOpenConnectionUndisturbed()
    {
        await using var listener = await Web.ListenAsync(7000);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await Client.DialAsync("web", 7000).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        (await ExchangeAsync(dialed, accepted, "before")).Should().Be("before");
        var handshake = Client.GetStatus().Peers.Single(p => p.Name == "web").LastHandshake;
        handshake.Should().NotBeNull();

        int configuredBefore = _mesh.Logs.Entries.Count(e => e.EventId.Id == 4100);

        // Other changes: a peer moves, gets new tags, goes offline, is removed and comes back with a new key.
        _mesh.Record(Other).Endpoints.Clear();
        _mesh.Record(Other).Endpoints.Add("127.0.0.1:9");
        _mesh.Record(Web).Online = false;
        _mesh.Record(Web).Tags.Add("tag:extra");
        _mesh.Publish(Client);
        _mesh.Publish(Client, includePeer: peer => peer != Other);
        _mesh.Publish(Client);

        (await ExchangeAsync(dialed, accepted, "during")).Should().Be("during");
        (await ExchangeAsync(accepted, dialed, "after")).Should().Be("after");
        var web = Client.GetStatus().Peers.Single(p => p.Name == "web");
        web.LastHandshake.Should().Be(handshake, "the session to an unchanged peer was never touched");
        web.Online.Should().BeFalse();
        web.Identity.Tags.Should().Contain("tag:extra");
        _mesh.Logs.Entries.Where(e => e.EventId.Id == 4100).Skip(configuredBefore).Select(e => e.Message)
            .Should().NotBeEmpty().And.OnlyContain(m => m.StartsWith("Peer 3 "), "only the peer that changed was set again");
    }

    [Fact]
    public async Task ARemovedPeerCannotBeDialed()
    {
        _mesh.Publish(Client, includePeer: peer => peer != Web);
        (await Client.Invoking(c => c.DialAsync("web", 80).AsTask()).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.PeerNotFound);
        Client.GetStatus().Peers.Select(p => p.Name).Should().Equal("other");
    }

    [Fact]
    public async Task UdpBetweenNodesWithTheSendersIdentity()
    {
        using var server = await Web.ListenUdpAsync(5353);
        using var client = await Client.ListenUdpAsync(0);
        var target = new IPEndPoint(Client.ResolveAddresses("web")[0], 5353);
        var received = new byte[64];
        var receiving = server.ReceiveFromAsync(received).AsTask();
        // The first datagram may be queued behind the WireGuard handshake: send until one arrives.
        for (int i = 0; i < 50 && !receiving.IsCompleted; i++)
        {
            client.SendTo("ping"u8, target);
            await Task.WhenAny(receiving, Task.Delay(100));
        }
        var result = await receiving.WaitAsync(Timeout);
        Encoding.UTF8.GetString(received, 0, result.ReceivedBytes).Should().Be("ping");
        var sender = (IPEndPoint)result.RemoteEndPoint;
        Web.FindPeer(sender.Address)!.Name.Should().Be("client");
        Web.FindPeer(IPAddress.Parse("100.64.0.77")).Should().BeNull();

        (await Web.Invoking(w => w.ListenUdpAsync(5353).AsTask()).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.AddressInUse);
    }

    [Fact]
    public async Task ListeningTwiceOnAPortIsAddressInUse()
    {
        await using var listener = await Web.ListenAsync(443);
        (await Web.Invoking(w => w.ListenAsync(443).AsTask()).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.AddressInUse);
        await listener.DisposeAsync();
        await using var again = await Web.ListenAsync(443);
    }

    [Fact]
    public async Task StatusReportsSelfPeersAndTraffic()
    {
        await using var listener = await Web.ListenAsync(80);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await Client.DialAsync("web", 80).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        await ExchangeAsync(dialed, accepted, new string('x', 10_000));

        var status = Client.GetStatus();
        status.Name.Should().Be("client");
        status.Tailnet.Should().Be("acme");
        status.Addresses.Should().Equal(TestNodes.V4(2), TestNodes.V6(2));
        status.PublicKey.Should().Be(Client.PublicKey);
        status.ListenPort.Should().Be(Client.ListenPort);
        status.Peers.Select(p => p.Name).Should().Equal("web", "other");
        var web = status.Peers[0];
        web.Configured.Should().BeTrue();
        web.Online.Should().BeTrue();
        web.Endpoint.Should().Be(new IPEndPoint(IPAddress.Loopback, Web.ListenPort));
        web.LastHandshake.Should().NotBeNull();
        web.BytesSent.Should().BeGreaterThan(10_000);
        web.BytesReceived.Should().BeGreaterThan(0);
        status.Peers[1].LastHandshake.Should().BeNull("nothing was sent to it");
        status.ToString().Should().Contain("client.acme.meshnet.internal");
        Client.Name.Should().Be("client");
        Client.Fqdn.Should().Be("client.acme.meshnet.internal");
        Client.NodeId.Should().Be(2UL);
    }

    [Fact]
    public async Task DisposingTheNodeClosesEverythingAndIsIdempotent()
    {
        var listener = await Web.ListenAsync(6000);
        var pendingAccept = listener.AcceptAsync().AsTask();
        var secondListener = await Web.ListenAsync(6001);
        var accepting = secondListener.AcceptAsync().AsTask();
        await using var dialed = await Client.DialAsync("web", 6001).AsTask().WaitAsync(Timeout);
        var accepted = await accepting.WaitAsync(Timeout);
        int port = Web.ListenPort;

        var first = Web.DisposeAsync().AsTask();
        var second = Web.DisposeAsync().AsTask();
        await Task.WhenAll(first, second).WaitAsync(Timeout);
        await Web.DisposeAsync();

        await pendingAccept.Invoking(t => t.WaitAsync(Timeout)).Should().ThrowAsync<ObjectDisposedException>();
        await accepted.Invoking(a => a.ReadAsync(new byte[1]).AsTask().WaitAsync(Timeout)).Should().ThrowAsync<Exception>();
        Web.Invoking(w => w.GetStatus()).Should().Throw<ObjectDisposedException>();
        await Web.Invoking(w => w.DialAsync("client", 1).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        await Web.Invoking(w => w.ListenAsync(1).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        Web.Addresses.Should().Equal(TestNodes.V4(1), TestNodes.V6(1));

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Invoking(s => s.Bind(new IPEndPoint(IPAddress.Loopback, port))).Should().NotThrow("the WireGuard socket is closed");
        await listener.DisposeAsync();
    }
}
