using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using MeshNet.AspNetCore;
using MeshNet.Integration.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshNet.Integration.Tests;

/// <summary>
/// ASP.NET Core on the tailnet: a real Kestrel app on one node (UseMeshNet + ListenMesh) and
/// HttpClients on others (<see cref="MeshNode.CreateHttpMessageHandler"/>), over HTTP/1.1 and
/// h2c, with the caller's identity on every request.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AspNetCoreOnTailnetTests : IAsyncLifetime
{
    private TestTailnet _tailnet = null!;
    private readonly List<WebApplication> _apps = [];

    public async Task InitializeAsync() => _tailnet = await TestTailnet.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }
        await _tailnet.DisposeAsync();
    }

    private async Task<(MeshNode Web, MeshNode Client)> StartPairAsync()
    {
        var webKey = await _tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, tags: ["tag:web"]);
        var clientKey = await _tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, tags: ["tag:client", "tag:ci"]);
        var web = await _tailnet.StartNodeAsync("web", webKey);
        var client = await _tailnet.StartNodeAsync("client", clientKey);
        await TestTailnet.WaitForPeerAsync(web, "client");
        await TestTailnet.WaitForPeerAsync(client, "web");
        return (web, client);
    }

    private async Task<WebApplication> StartAppAsync(MeshNode node, int port, Action<WebApplication> map,
        Action<KestrelServerOptions>? configureKestrel = null, string version = "1.1")
    {
        // h2c (prior knowledge) needs an Http2-only endpoint: without TLS, Kestrel's Http1AndHttp2 means HTTP/1.1.
        Action<ListenOptions>? endpoint = version == "2.0" ? listen => listen.Protocols = HttpProtocols.Http2 : null;
        var app = await MeshWebApp.StartAsync(node, port, map, configureKestrel, endpoint);
        _apps.Add(app);
        return app;
    }

    private static HttpClient ClientOf(MeshNode node, Version? version = null) => new(node.CreateHttpMessageHandler())
    {
        Timeout = TestTailnet.Timeout,
        DefaultRequestVersion = version ?? HttpVersion.Version11,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    private static void MapWhoAmI(WebApplication app) => app.MapGet("/whoami", (HttpContext context) =>
    {
        var peer = context.GetMeshPeer();
        var feature = context.Features.Get<IMeshPeerFeature>();
        return new WhoAmI(
            peer?.Name, peer?.Fqdn, peer?.Addresses.Select(a => a.ToString()).ToArray(), peer?.Tags.ToArray(),
            feature?.Peer.Name, context.Request.Protocol, context.Connection.RemoteIpAddress?.ToString());
    });

    private static void MapEcho(WebApplication app) => app.MapPost("/echo", async (HttpContext context) =>
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        context.Response.ContentType = "application/octet-stream";
        context.Response.Headers["X-Sha256"] = Convert.ToHexString(SHA256.HashData(body.ToArray()));
        await context.Response.Body.WriteAsync(body.ToArray(), context.RequestAborted);
    });

    private sealed record WhoAmI(string? Name, string? Fqdn, string[]? Addresses, string[]? Tags, string? FeatureName, string Protocol, string? RemoteIp);

    public static TheoryData<string> Versions => new() { "1.1", "2.0" };

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task AnAppOnOneNodeServesAnotherNodeWithTheCallersIdentity(string version)
    {
        var (web, client) = await StartPairAsync();
        var app = await StartAppAsync(web, 8080, MapWhoAmI, version: version);
        using var http = ClientOf(client, Version.Parse(version));

        using var response = await http.GetAsync("http://web:8080/whoami");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Version.Should().Be(Version.Parse(version));
        var who = (await response.Content.ReadFromJsonAsync<WhoAmI>())!;
        who.Name.Should().Be("client");
        who.Fqdn.Should().Be($"client.{_tailnet.Domain}");
        who.Addresses.Should().Equal(client.Addresses.Select(a => a.ToString()));
        who.Tags.Should().BeEquivalentTo("tag:client", "tag:ci");
        who.FeatureName.Should().Be("client", "the connection feature is visible on the request's features");
        who.Protocol.Should().Be(version == "2.0" ? "HTTP/2" : "HTTP/1.1");
        who.RemoteIp.Should().Be(client.Addresses[0].ToString(), "the connection's remote endpoint is the caller's tailnet address");
        app.Addresses().Should().Equal($"http://web.{_tailnet.Domain}:8080");

        // By fully qualified name and by IPv6 address literal too.
        (await http.GetFromJsonAsync<WhoAmI>($"http://web.{_tailnet.Domain}:8080/whoami"))!.Name.Should().Be("client");
        (await http.GetFromJsonAsync<WhoAmI>($"http://[{web.Addresses[1]}]:8080/whoami"))!.RemoteIp.Should().Be(client.Addresses[1].ToString());
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task RequestAndResponseBodiesOfSeveralMebibytesRoundTripIntact(string version)
    {
        var (web, client) = await StartPairAsync();
        await StartAppAsync(web, 80, MapEcho, version: version);
        using var http = ClientOf(client, Version.Parse(version));
        var body = new byte[3 * 1024 * 1024 + 12345];
        new Random(42).NextBytes(body);

        using var response = await http.PostAsync("http://web/echo", new ByteArrayContent(body));

        response.EnsureSuccessStatusCode();
        response.Version.Should().Be(Version.Parse(version));
        response.Headers.GetValues("X-Sha256").Single().Should().Be(Convert.ToHexString(SHA256.HashData(body)));
        var echoed = await response.Content.ReadAsByteArrayAsync();
        echoed.Length.Should().Be(body.Length);
        echoed.AsSpan().SequenceEqual(body).Should().BeTrue();
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task ManyConcurrentRequestsAreAllAnswered(string version)
    {
        var (web, client) = await StartPairAsync();
        await StartAppAsync(web, 80, app =>
        {
            MapEcho(app);
            app.MapGet("/n/{n:int}", (int n, HttpContext context) => $"{n} for {context.GetMeshPeer()!.Name}");
        }, version: version);
        using var http = ClientOf(client, Version.Parse(version));

        var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(async n =>
        {
            if (n % 8 == 0)
            {
                var body = new byte[64 * 1024 + n];
                new Random(n).NextBytes(body);
                using var posted = await http.PostAsync("http://web/echo", new ByteArrayContent(body));
                (await posted.Content.ReadAsByteArrayAsync()).Should().Equal(body);
            }
            using var response = await http.GetAsync($"http://web/n/{n}");
            response.Version.Should().Be(Version.Parse(version));
            return await response.Content.ReadAsStringAsync();
        }));

        answers.Should().Equal(Enumerable.Range(0, 64).Select(n => $"{n} for client"));
    }

    [Fact]
    public async Task AnHttp1AndHttp2EndpointWithoutTlsRefusesPriorKnowledgeHttp2AndServesHttp11()
    {
        // Kestrel's behaviour on any cleartext Http1AndHttp2 endpoint, documented on ListenMesh.
        var (web, client) = await StartPairAsync();
        await StartAppAsync(web, 80, MapWhoAmI);
        using var http2 = ClientOf(client, HttpVersion.Version20);

        var request = () => http2.GetAsync("http://web/whoami");

        // Kestrel sends GOAWAY HTTP_1_1_REQUIRED and closes; the client reports either, depending on which it reads first.
        await request.Should().ThrowAsync<HttpRequestException>();
        using var http11 = ClientOf(client);
        (await http11.GetFromJsonAsync<WhoAmI>("http://web/whoami"))!.Protocol.Should().Be("HTTP/1.1");
    }

    [Fact]
    public async Task AnAppWithOnlyTailnetEndpointsServesNothingOnOrdinarySockets()
    {
        var (web, client) = await StartPairAsync();
        var app = await StartAppAsync(web, 0, MapWhoAmI);
        int port = app.MeshPort();

        app.Addresses().Should().Equal($"http://web.{_tailnet.Domain}:{port}");
        port.Should().BeGreaterThan(0);
        foreach (var loopback in new[] { IPAddress.Loopback, IPAddress.IPv6Loopback })
        {
            using var socket = new Socket(loopback.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            var connecting = () => socket.ConnectAsync(new IPEndPoint(loopback, port));
            (await connecting.Should().ThrowAsync<SocketException>()).Which.SocketErrorCode.Should().Be(SocketError.ConnectionRefused);
        }
        using var http = ClientOf(client);
        (await http.GetFromJsonAsync<WhoAmI>($"http://web:{port}/whoami"))!.Name.Should().Be("client");
    }

    [Fact]
    public async Task OneAppServesOnTheTailnetAndOnALocalSocketAndOnlyTailnetRequestsHaveAPeer()
    {
        var (web, client) = await StartPairAsync();
        var app = await StartAppAsync(web, 80, MapWhoAmI, kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var local = app.Addresses().Single(address => address.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));

        using var overSocket = new HttpClient { Timeout = TestTailnet.Timeout };
        var anonymous = (await overSocket.GetFromJsonAsync<WhoAmI>($"{local}/whoami"))!;
        anonymous.Name.Should().BeNull("a request over an ordinary socket has no tailnet peer");
        anonymous.FeatureName.Should().BeNull();

        using var overMesh = ClientOf(client);
        (await overMesh.GetFromJsonAsync<WhoAmI>("http://web/whoami"))!.Name.Should().Be("client");
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task ConnectionMiddlewareSeesThePeerAndConnectionClosedFiresWhenTheClientHangsUp(string version)
    {
        var (web, client) = await StartPairAsync();
        var peers = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var app = await MeshWebApp.StartAsync(web, 80, MapWhoAmI, configureEndpoint: listen =>
        {
            listen.Protocols = version == "2.0" ? HttpProtocols.Http2 : HttpProtocols.Http1;
            listen.Use(next => connection =>
            {
                peers.Enqueue(connection.Features.Get<IMeshPeerFeature>()!.Peer.Name);
                connection.RemoteEndPoint.Should().BeOfType<IPEndPoint>().Which.Address.Should().Be(client.Addresses[0]);
                connection.ConnectionClosed.Register(() => closed.TrySetResult());
                return next(connection);
            });
        });
        _apps.Add(app);
        var http = ClientOf(client, Version.Parse(version));
        (await http.GetFromJsonAsync<WhoAmI>("http://web/whoami"))!.Name.Should().Be("client");
        peers.Should().Equal("client");
        closed.Task.IsCompleted.Should().BeFalse();

        http.Dispose(); // closes the pooled connection: the server reads its FIN

        await closed.Task.WaitAsync(TestTailnet.Timeout);
    }

    [Fact]
    public async Task AbortingARequestResetsItsConnection()
    {
        var (web, client) = await StartPairAsync();
        await StartAppAsync(web, 80, app => app.MapGet("/abort", (HttpContext context) => context.Abort()));
        using var http = ClientOf(client);

        var request = () => http.GetAsync("http://web/abort");

        await request.Should().ThrowAsync<HttpRequestException>();
    }

    [Fact]
    public async Task ANameThatIsNoNodeGivesAnHttpRequestExceptionWithPeerNotFoundInside()
    {
        var (_, client) = await StartPairAsync();
        using var http = ClientOf(client);

        var request = () => http.GetAsync("http://nosuchnode/");

        var thrown = (await request.Should().ThrowAsync<HttpRequestException>()).Which;
        thrown.InnerException.Should().BeOfType<MeshException>().Which.ErrorCode.Should().Be(MeshErrorCode.PeerNotFound);
    }

    [Fact]
    public async Task StoppingTheAppFreesItsTailnetPort()
    {
        var (web, client) = await StartPairAsync();
        var app = await StartAppAsync(web, 8080, MapWhoAmI);
        using var http = ClientOf(client);
        (await http.GetFromJsonAsync<WhoAmI>("http://web:8080/whoami"))!.Name.Should().Be("client");

        await app.StopAsync().WaitAsync(TestTailnet.Timeout);

        await using (var listener = await web.ListenAsync(8080))
        {
            listener.Port.Should().Be(8080, "the app's listener is closed");
        }
        // And an app can serve there again.
        await StartAppAsync(web, 8080, MapWhoAmI);
        using var fresh = ClientOf(client);
        (await fresh.GetFromJsonAsync<WhoAmI>("http://web:8080/whoami"))!.Name.Should().Be("client");
    }

    [Fact]
    public async Task DisposingTheNodeUnderARunningAppStopsItsTailnetServiceWithoutCrashing()
    {
        var (web, client) = await StartPairAsync();
        var app = await StartAppAsync(web, 80, MapWhoAmI);
        using var http = ClientOf(client);
        (await http.GetFromJsonAsync<WhoAmI>("http://web/whoami"))!.Name.Should().Be("client");

        await web.DisposeAsync().AsTask().WaitAsync(TestTailnet.Timeout);

        using var after = ClientOf(client);
        after.Timeout = TimeSpan.FromSeconds(5);
        var request = () => after.GetAsync("http://web/whoami");
        await request.Should().ThrowAsync<Exception>("the server's node is gone");
        await app.StopAsync().WaitAsync(TestTailnet.Timeout);
        // The handler of a disposed node fails cleanly too.
        using var dead = new HttpClient(client.CreateHttpMessageHandler()) { Timeout = TestTailnet.Timeout };
        await client.DisposeAsync();
        var deadRequest = () => dead.GetAsync("http://web/");
        (await deadRequest.Should().ThrowAsync<HttpRequestException>()).Which.InnerException.Should().BeOfType<ObjectDisposedException>();
    }
}
