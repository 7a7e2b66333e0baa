using System.Net;
using System.Text;
using MeshNet.Coordination;
using MeshNet.Coordination.Registry;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.Integration.Tests;

/// <summary>
/// Nodes against the real coordination service (an <see cref="EmbeddedCoordinationServer"/> in
/// this process, SQLite in a temporary directory, plain HTTP/2 on loopback): join, resolve each
/// other by name, exchange data; auth-key errors; deltas; restarts; key expiry.
/// </summary>
[Trait("Category", "Integration")]
public sealed class NodeEndToEndTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly string _directory = Directory.CreateTempSubdirectory("meshnet-node-e2e-").FullName;
    private EmbeddedCoordinationServer _server = null!;
    private string _domain = "";

    public async Task InitializeAsync()
    {
        _server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions());
        _domain = await _server.CreateTailnetAsync("acme");
    }

    public async Task DisposeAsync()
    {
        for (int i = _disposables.Count - 1; i >= 0; i--)
        {
            await _disposables[i].DisposeAsync();
        }
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private MeshNodeOptions Options(string hostname, string? authKey, IMeshStateStore? store = null) => new()
    {
        ControlUrl = new Uri(_server.Url),
        AuthKey = authKey,
        Hostname = hostname,
        BindAddress = IPAddress.Loopback,
        StateStore = store,
        StartTimeout = Timeout,
    };

    private async Task<MeshNode> StartAsync(MeshNodeOptions options)
    {
        var node = await MeshNode.StartAsync(options);
        _disposables.Add(node);
        return node;
    }

    private static async Task WaitForPeerAsync(MeshNode node, string name)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!node.GetStatus().Peers.Any(p => p.Name == name))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{node.Name} never saw {name}.");
            }
            await Task.Delay(20);
        }
    }

    private static async Task<string> ExchangeAsync(MeshConnection from, MeshConnection to, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        await from.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
        var buffer = new byte[bytes.Length];
        await to.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
        return Encoding.UTF8.GetString(buffer);
    }

    [Fact]
    public async Task TwoNodesJoinDialEachOtherByNameAndExchangeData()
    {
        var key = await _server.CreateAuthKeyAsync("acme", reusable: true, tags: ["tag:test"]);
        var web = await StartAsync(Options("web", key));
        var client = await StartAsync(Options("client", key));

        web.Name.Should().Be("web");
        web.Fqdn.Should().Be($"web.{_domain}");
        web.Addresses.Should().HaveCount(2);
        client.GetStatus().Peers.Select(p => p.Name).Should().Contain("web", "the joining node's first netmap holds the earlier one");
        await WaitForPeerAsync(web, "client"); // a delta

        await using var listener = await web.ListenAsync(80);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await client.DialAsync("web", 80).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        (await ExchangeAsync(dialed, accepted, "GET / HTTP/1.0\r\n\r\n")).Should().StartWith("GET");
        (await ExchangeAsync(accepted, dialed, "HTTP/1.0 200 OK\r\n\r\n")).Should().StartWith("HTTP/1.0 200");
        dialed.Peer.Name.Should().Be("web");
        dialed.Peer.HasTag("tag:test").Should().BeTrue();
        accepted.Peer.Name.Should().Be("client");
        accepted.Peer.Addresses.Should().Equal(client.Addresses);

        // The other way round, by FQDN and over IPv6.
        await using var listener2 = await client.ListenAsync(0);
        var accepting2 = listener2.AcceptAsync().AsTask();
        await using var back = await web.DialAsync($"client.{_domain}.", listener2.Port).AsTask().WaitAsync(Timeout);
        await using var back6 = await web.DialAsync(client.Addresses[1].ToString(), listener2.Port).AsTask().WaitAsync(Timeout);
        await using var acceptedBack = await accepting2.WaitAsync(Timeout);
        (await ExchangeAsync(back, acceptedBack, "ping")).Should().Be("ping");

        var status = client.GetStatus();
        status.ControlConnected.Should().BeTrue();
        var webStatus = status.Peers.Single(p => p.Name == "web");
        webStatus.Online.Should().BeTrue();
        webStatus.LastHandshake.Should().NotBeNull();
        webStatus.BytesSent.Should().BeGreaterThan(0);
    }

    [Fact]
    public async Task AuthKeyErrorsHavePreciseCodes()
    {
        async Task<MeshErrorCode> Fails(MeshNodeOptions options) =>
            (await ((Func<Task>)(() => StartAsync(options))).Should().ThrowAsync<MeshException>()).Which.ErrorCode;

        (await Fails(Options("a", null))).Should().Be(MeshErrorCode.AuthKeyRequired);
        (await Fails(Options("a", "mnkey-nope-nope"))).Should().Be(MeshErrorCode.AuthKeyUnknown);
        var oneOff = await _server.CreateAuthKeyAsync("acme");
        await StartAsync(Options("first", oneOff));
        (await Fails(Options("second", oneOff))).Should().Be(MeshErrorCode.AuthKeyUsedUp);
        var tagged = await _server.CreateAuthKeyAsync("acme", reusable: true);
        var withTags = Options("tags", tagged);
        withTags.Tags = ["tag:admin"];
        (await Fails(withTags)).Should().Be(MeshErrorCode.TagsNotPermitted);
    }

    [Fact]
    public async Task ARestartedNodeKeepsItsIdentityWithoutAnAuthKey()
    {
        var key = await _server.CreateAuthKeyAsync("acme");
        var path = Path.Combine(_directory, "web.json");
        var first = await MeshNode.StartAsync(Options("web", key, new FileStateStore(path)));
        var (name, addresses, publicKey) = (first.Name, first.Addresses, first.PublicKey);
        await first.DisposeAsync();

        var again = await StartAsync(Options("web", authKey: null, new FileStateStore(path)));
        again.Name.Should().Be(name);
        again.Addresses.Should().Equal(addresses);
        again.PublicKey.Should().Be(publicKey);
    }

    [Fact]
    public async Task ANodeThatJoinsLaterIsSeenThroughADeltaAndCanBeDialed()
    {
        var key = await _server.CreateAuthKeyAsync("acme", reusable: true);
        var a = await StartAsync(Options("a", key));
        var b = await StartAsync(Options("b", key));
        await WaitForPeerAsync(a, "b");
        await using var listener = await a.ListenAsync(9000);
        var c = await StartAsync(Options("c", key));
        await WaitForPeerAsync(a, "c");
        var accepting = listener.AcceptAsync().AsTask();
        await using var fromC = await c.DialAsync("a", 9000).AsTask().WaitAsync(Timeout);
        await using var atA = await accepting.WaitAsync(Timeout);
        atA.Peer.Name.Should().Be("c");
        (await ExchangeAsync(atA, fromC, "hi c")).Should().Be("hi c");

        // Leaving: b goes offline for its peers.
        await b.DisposeAsync();
        var deadline = DateTime.UtcNow + Timeout;
        while (a.GetStatus().Peers.Single(p => p.Name == "b").Online)
        {
            DateTime.UtcNow.Should().BeBefore(deadline);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task AnExpiredKeyIsRotatedAndTheNodeComesBack()
    {
        var key = await _server.CreateAuthKeyAsync("acme", reusable: true);
        var a = await StartAsync(Options("a", key));
        var b = await StartAsync(Options("b", key));
        await WaitForPeerAsync(b, "a");
        var oldKey = a.PublicKey;

        var admin = _server.Services.GetRequiredService<AdminOperations>();
        await admin.ExpireNodeKeyAsync("acme", a.NodeId, CancellationToken.None);

        var deadline = DateTime.UtcNow + Timeout;
        while (a.PublicKey.Equals(oldKey) || !b.GetStatus().Peers.Any(p => p.Name == "a" && p.PublicKey!.Equals(a.PublicKey) && p.Configured))
        {
            DateTime.UtcNow.Should().BeBefore(deadline, "the node rotates its key and its peers learn the new one");
            await Task.Delay(20);
        }
        a.NodeId.Should().Be(b.GetStatus().Peers.Single(p => p.Name == "a").NodeId, "a rotation keeps the node's identity");

        await using var listener = await a.ListenAsync(7);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await b.DialAsync("a", 7).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        (await ExchangeAsync(dialed, accepted, "new key")).Should().Be("new key");
    }

    [Fact]
    public async Task NodesSurviveAControlOutageAndReconnectWhenItReturns()
    {
        // A server with a fixed address and database, so that it can come back as the same service.
        await _server.DisposeAsync();
        var data = Path.Combine(_directory, "control");
        Directory.CreateDirectory(data);
        _server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = data });
        var url = _server.Url;
        await _server.CreateTailnetAsync("acme");
        var key = await _server.CreateAuthKeyAsync("acme", reusable: true);

        MeshNodeOptions Fast(string name)
        {
            var options = Options(name, key);
            options.ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            options.ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(500);
            return options;
        }

        var a = await StartAsync(Fast("a"));
        var b = await StartAsync(Fast("b"));
        await WaitForPeerAsync(a, "b");
        await using var listener = await a.ListenAsync(5000);
        var accepting = listener.AcceptAsync().AsTask();
        await using var open = await b.DialAsync("a", 5000).AsTask().WaitAsync(Timeout);
        await using var openAtA = await accepting.WaitAsync(Timeout);

        await _server.DisposeAsync();
        await WaitUntilAsync(() => !a.GetStatus().ControlConnected && !b.GetStatus().ControlConnected, "the nodes to notice the outage");

        // The data plane does not notice: the open connection works, and known peers can be dialed.
        (await ExchangeAsync(open, openAtA, "still here")).Should().Be("still here");
        var acceptingNew = listener.AcceptAsync().AsTask();
        await using var fresh = await b.DialAsync("a", 5000).AsTask().WaitAsync(Timeout);
        await using var freshAtA = await acceptingNew.WaitAsync(Timeout);
        (await ExchangeAsync(freshAtA, fresh, "new connection")).Should().Be("new connection");
        b.GetStatus().LastControlError.Should().Be(MeshErrorCode.ControlUnreachable);

        // The service comes back at the same address with the same database: the nodes reconnect
        // by themselves, and see a node that joins afterwards.
        _server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { DataDirectory = data, Url = url });
        await WaitUntilAsync(() => a.GetStatus().ControlConnected && b.GetStatus().ControlConnected, "the nodes to reconnect");
        var c = await StartAsync(Fast("c"));
        await WaitForPeerAsync(a, "c");
        (await ExchangeAsync(open, openAtA, "after")).Should().Be("after");
    }

    [Fact]
    public async Task NeitherTheAuthKeyNorThePrivateKeyIsEverLogged()
    {
        var logs = new RecordingLoggerFactory();
        var key = await _server.CreateAuthKeyAsync("acme", reusable: true);
        using var store = new InMemoryStateStore();
        var options = Options("secretive", key, store);
        options.LoggerFactory = logs;
        var node = await StartAsync(options);
        var other = await StartAsync(Options("other", key));
        await WaitForPeerAsync(node, "other");
        await using (var listener = await other.ListenAsync(1))
        {
            var accepting = listener.AcceptAsync().AsTask();
            await using var dialed = await node.DialAsync("other", 1).AsTask().WaitAsync(Timeout);
            await using var accepted = await accepting.WaitAsync(Timeout);
            await ExchangeAsync(dialed, accepted, "x");
        }
        await node.DisposeAsync();

        using var identity = await store.LoadAsync();
        string privateKey = identity!.PrivateKey.ExportBase64();
        logs.Count.Should().BeGreaterThan(10, "the node logged its life at every level");
        logs.AllText.Should().NotContain(key).And.NotContain(key["mnkey-".Length..]).And.NotContain(privateKey);
        logs.AllText.Should().Contain(identity.PublicKey.ToShortString());
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out waiting for {what}.");
            }
            await Task.Delay(20);
        }
    }
}
