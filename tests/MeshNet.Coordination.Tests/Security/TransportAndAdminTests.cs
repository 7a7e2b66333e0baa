using System.Collections.Concurrent;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Coordination.Auth;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using AdminApi = MeshNet.Control.V1.Admin;
using ControlApi = MeshNet.Control.V1.Control;

namespace MeshNet.Coordination.Tests.Security;

[Trait("Category", "Security")]
public sealed class TransportAndAdminTests
{
    [Fact]
    public async Task PlainHttpFromANonLoopbackAddressIsRefused()
    {
        var address = NonLoopbackAddress();
        if (address is null)
        {
            // No interface to connect through: the rule itself (what the interceptors apply).
            TransportRule.IsPermitted(isHttps: false, IPAddress.Parse("192.0.2.1")).Should().BeFalse();
            return;
        }
        using var directory = new TempDirectory();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(address, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddRouting();
        builder.Services.AddMeshNetCoordination(options =>
        {
            options.DatabasePath = directory.File("c.db");
            options.AdminToken = "0123456789abcdef0123";
        });
        await using var app = builder.Build();
        app.MapMeshNetCoordination();
        await app.StartAsync();
        try
        {
            var url = app.Urls.Single();
            using var channel = GrpcChannel.ForAddress(url);
            await Errors.ExpectAsync(() => new ControlApi.ControlClient(channel).GetServerInfoAsync(new GetServerInfoRequest()).ResponseAsync,
                StatusCode.PermissionDenied, ControlErrors.TlsRequired, "TLS");
            await Errors.ExpectAsync(() => new AdminApi.AdminClient(channel).ListTailnetsAsync(new ListTailnetsRequest(),
                new Metadata { { "authorization", "Bearer 0123456789abcdef0123" } }).ResponseAsync, StatusCode.PermissionDenied, ControlErrors.TlsRequired);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task TheAdminApiNeedsTheToken()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var admin = harness.Admin;
        await Errors.ExpectAsync(() => admin.ListTailnetsAsync(new ListTailnetsRequest()).ResponseAsync, StatusCode.Unauthenticated);
        await Errors.ExpectAsync(() => admin.ListTailnetsAsync(new ListTailnetsRequest(), harness.AdminHeaders("wrong-token-0123456789")).ResponseAsync,
            StatusCode.Unauthenticated, messageContains: "wrong");
        await Errors.ExpectAsync(() => admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "x" },
            new Metadata { { "authorization", harness.Server.AdminToken } }).ResponseAsync, StatusCode.Unauthenticated);
        (await admin.ListTailnetsAsync(new ListTailnetsRequest(), harness.AdminHeaders())).Tailnets.Should().BeEmpty();
    }

    [Fact]
    public async Task TheAdminApiManagesTailnetsKeysAndNodes()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var admin = harness.Admin;
        var headers = harness.AdminHeaders();
        var tailnet = await admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "acme", Domain = "corp.example" }, headers);
        tailnet.Domain.Should().Be("corp.example");
        tailnet.NodeKeyLifetime.ToTimeSpan().Should().Be(TimeSpan.FromDays(180));
        await Errors.ExpectAsync(() => admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "acme" }, headers).ResponseAsync, StatusCode.AlreadyExists);
        await Errors.ExpectAsync(() => admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "Bad Name" }, headers).ResponseAsync,
            StatusCode.InvalidArgument, messageContains: "name");
        await Errors.ExpectAsync(() => admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "nope" }, headers).ResponseAsync, StatusCode.NotFound);
        await Errors.ExpectAsync(() => admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", Tags = { "prod" } }, headers).ResponseAsync,
            StatusCode.InvalidArgument, messageContains: "tags");

        var created = await admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", Reusable = true, Description = "ci" }, headers);
        created.Secret.Should().StartWith($"mnkey-{created.Key.Id}-");
        created.Key.Expires.ToDateTimeOffset().Should().Be(harness.Clock.GetUtcNow().AddHours(24));
        var (_, node) = await harness.JoinAsync(created.Secret, "box");

        var keys = await admin.ListAuthKeysAsync(new ListAuthKeysRequest { Tailnet = "acme" }, headers);
        keys.Keys.Single().Should().Match<AuthKey>(key => key.Uses == 1 && key.Description == "ci" && !key.Revoked);
        keys.ToString().Should().NotContain(created.Secret[^32..], "the secret is shown only at creation");
        await admin.RevokeAuthKeyAsync(new RevokeAuthKeyRequest { Id = created.Key.Id }, headers);
        (await admin.ListAuthKeysAsync(new ListAuthKeysRequest { Tailnet = "acme" }, headers)).Keys.Single().Revoked.Should().BeTrue();
        await Errors.ExpectAsync(() => admin.RevokeAuthKeyAsync(new RevokeAuthKeyRequest { Id = "nope" }, headers).ResponseAsync, StatusCode.NotFound);

        (await admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, headers)).Nodes.Single().Id.Should().Be(node.Self.Id);
        await admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "acme", Id = node.Self.Id }, headers);
        (await admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, headers)).Nodes.Should().BeEmpty();
        await Errors.ExpectAsync(() => admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "acme", Id = node.Self.Id }, headers).ResponseAsync,
            StatusCode.NotFound);

        await admin.DeleteTailnetAsync(new DeleteTailnetRequest { Name = "acme" }, headers);
        (await admin.ListTailnetsAsync(new ListTailnetsRequest(), headers)).Tailnets.Should().BeEmpty();
        await Errors.ExpectAsync(() => admin.DeleteTailnetAsync(new DeleteTailnetRequest { Name = "acme" }, headers).ResponseAsync, StatusCode.NotFound);
    }

    [Fact]
    public async Task DeletingATailnetEndsItsStreams()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var (alice, _) = await harness.JoinAsync(key, "alice");
        using var map = alice.Map();
        await map.NextAsync();
        await harness.Admin.DeleteTailnetAsync(new DeleteTailnetRequest { Name = "acme" }, harness.AdminHeaders());
        (await map.FailureAsync()).StatusCode.Should().Be(StatusCode.FailedPrecondition);
        await Errors.ExpectAsync(() => alice.Map().NextAsync(), StatusCode.FailedPrecondition, ControlErrors.NodeNotRegistered);
    }

    [Fact]
    public async Task LogsNeverCarrySecretsTokensOrKeys()
    {
        var lines = new ConcurrentQueue<string>();
        using var loggerFactory = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(new CapturingProvider(lines)));
        await using var server = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions { LoggerFactory = loggerFactory });
        using var channel = GrpcChannel.ForAddress(server.Url);
        var serverKey = (await new ControlApi.ControlClient(channel).GetServerInfoAsync(new GetServerInfoRequest())).ServerKey.ToByteArray();
        await server.CreateTailnetAsync("acme");
        var secret = await server.CreateAuthKeyAsync("acme");
        var node = new NodeClient(channel, serverKey, TimeProvider.System);
        await node.RegisterAsync(secret, "box");
        var stranger = new NodeClient(channel, serverKey, TimeProvider.System);
        var wrong = secret[..^1] + (secret[^1] == 'q' ? "r" : "q"); // a different last character, whatever the random one was
        await Errors.ExpectAsync(() => stranger.RegisterAsync(wrong), StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown);
        stranger.Dispose();
        await Errors.ExpectAsync(() => new AdminApi.AdminClient(channel).ListTailnetsAsync(new ListTailnetsRequest(),
            new Metadata { { "authorization", "Bearer guess-" + server.AdminToken } }).ResponseAsync, StatusCode.Unauthenticated);
        node.Dispose();

        lines.Should().NotBeEmpty();
        var text = string.Join('\n', lines);
        text.Should().Contain("joined tailnet acme");
        text.Should().NotContain(secret[^32..]);
        text.Should().NotContain(server.AdminToken);
        text.Should().NotContain(Convert.ToBase64String(node.Node.PublicKey));
    }

    private static IPAddress? NonLoopbackAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(nic => nic.OperationalStatus == OperationalStatus.Up && nic.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(nic => nic.GetIPProperties().UnicastAddresses)
            .Select(unicast => unicast.Address)
            .FirstOrDefault(address => address.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(address));

    private sealed class CapturingProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new CapturingLogger(lines);

        public void Dispose()
        {
        }
    }

    private sealed class CapturingLogger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{eventId.Id} {formatter(state, exception)} {exception}");
    }
}
