using System.Net;
using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination.Tests.Infrastructure;
using MeshNet.Protocol;
using ControlApi = MeshNet.Control.V1.Control;

namespace MeshNet.Coordination.Tests.Integration;

[Trait("Category", "Integration")]
public sealed class RegistrationTests
{
    [Fact]
    public async Task ServerInfoIsUnauthenticatedAndCarriesTheServerKey()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var info = await new ControlApi.ControlClient(harness.Channel).GetServerInfoAsync(new GetServerInfoRequest());
        info.ServerKey.Length.Should().Be(32);
        info.ProtocolVersion.Should().Be(1);
        harness.Server.Url.Should().StartWith("http://127.0.0.1:");
    }

    [Fact]
    public async Task ANewNodeGetsAnIdAddressesNameAndKeyExpiry()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var domain = await harness.Server.CreateTailnetAsync("acme");
        domain.Should().Be("acme.meshnet.internal");
        var key = await harness.Server.CreateAuthKeyAsync("acme");

        var (_, response) = await harness.JoinAsync(key, "Build-Agent.corp.example");

        response.Tailnet.Should().Be("acme");
        response.Domain.Should().Be("acme.meshnet.internal");
        var self = response.Self;
        self.Id.Should().BeGreaterThan(0);
        self.Name.Should().Be("build-agent");
        self.Hostname.Should().Be("Build-Agent.corp.example");
        self.Addresses.Should().HaveCount(2);
        IPNetwork.Parse("100.64.0.0/10").Contains(IPAddress.Parse(self.Addresses[0])).Should().BeTrue();
        IPNetwork.Parse("fd7a:115c:a1e0::/48").Contains(IPAddress.Parse(self.Addresses[1])).Should().BeTrue();
        self.KeyExpiry.ToDateTimeOffset().Should().Be(CoordinationHarness.Epoch.AddDays(180));
        self.Ephemeral.Should().BeFalse();
    }

    [Fact]
    public async Task EachAuthKeyProblemHasItsOwnStatusMessageAndTrailer()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        var once = await harness.Server.CreateAuthKeyAsync("acme");
        var shortLived = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, lifetime: TimeSpan.FromMinutes(10));
        var revokedResponse = await harness.Admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", Reusable = true }, harness.AdminHeaders());
        await harness.Admin.RevokeAuthKeyAsync(new RevokeAuthKeyRequest { Id = revokedResponse.Key.Id }, harness.AdminHeaders());

        await harness.JoinAsync(once);
        await Errors.ExpectAsync(() => harness.JoinAsync(once), StatusCode.PermissionDenied, ControlErrors.AuthKeyUsedUp, "already used");
        await Errors.ExpectAsync(() => harness.JoinAsync(""), StatusCode.PermissionDenied, ControlErrors.AuthKeyRequired, "required");
        await Errors.ExpectAsync(() => harness.JoinAsync("mnkey-aaaaaaaaaaaa-" + new string('b', 32)), StatusCode.PermissionDenied,
            ControlErrors.AuthKeyUnknown, "unknown auth key");
        await Errors.ExpectAsync(() => harness.JoinAsync("not a key"), StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown, "unknown auth key");
        // The right id with the wrong secret is just as unknown.
        await Errors.ExpectAsync(() => harness.JoinAsync(once[..^4] + "zzzz"), StatusCode.PermissionDenied, ControlErrors.AuthKeyUnknown);
        await Errors.ExpectAsync(() => harness.JoinAsync(revokedResponse.Secret), StatusCode.PermissionDenied, ControlErrors.AuthKeyRevoked, "revoked");

        await harness.JoinAsync(shortLived);
        harness.Clock.Advance(TimeSpan.FromMinutes(11));
        await Errors.ExpectAsync(() => harness.JoinAsync(shortLived), StatusCode.PermissionDenied, ControlErrors.AuthKeyExpired, "expired");

        harness.Server.Counters.RegistrationsRefused.Should().Be(7);
    }

    [Fact]
    public async Task ReusableEphemeralAndPreTaggedKeysShapeTheNodes()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        await harness.Server.CreateTailnetAsync("acme");
        var key = await harness.Server.CreateAuthKeyAsync("acme", reusable: true, ephemeral: true, tags: ["tag:ci", "tag:build"]);

        var first = (await harness.JoinAsync(key, "runner")).Response.Self;
        var second = (await harness.JoinAsync(key, "runner")).Response.Self;
        first.Ephemeral.Should().BeTrue();
        first.Tags.Should().Equal("tag:build", "tag:ci");
        second.Id.Should().NotBe(first.Id);

        var asking = harness.NewNode();
        (await asking.RegisterAsync(key, "runner", false, "tag:ci")).Self.Tags.Should().Equal("tag:build", "tag:ci");
        await Errors.ExpectAsync(() => harness.NewNode().RegisterAsync(key, "runner", false, "tag:prod"), StatusCode.PermissionDenied,
            ControlErrors.TagsNotPermitted, "tag:prod");

        var plain = await harness.Server.CreateAuthKeyAsync("acme", reusable: true);
        (await harness.NewNode().RegisterAsync(plain, "x", ephemeral: true)).Self.Ephemeral.Should().BeTrue("the node asked to be ephemeral");
        (await harness.NewNode().RegisterAsync(plain, "y")).Self.Ephemeral.Should().BeFalse();
    }

    [Fact]
    public async Task NamesAreUniquePerTailnetWithNumberedSuffixes()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var acme = await harness.TailnetWithKeyAsync("acme");
        var other = await harness.TailnetWithKeyAsync("other");
        var names = new List<string>();
        foreach (var hostname in new[] { "web", "WEB", "web.example.com", "db", "web-2" })
        {
            names.Add((await harness.JoinAsync(acme, hostname)).Response.Self.Name);
        }
        names.Should().Equal("web", "web-2", "web-3", "db", "web-2-2");
        (await harness.JoinAsync(other, "web")).Response.Self.Name.Should().Be("web", "names are per tailnet");
    }

    [Fact]
    public async Task AddressesAreUniquePerTailnet()
    {
        await using var harness = await CoordinationHarness.StartAsync();
        var key = await harness.TailnetWithKeyAsync("acme");
        var addresses = new HashSet<string>();
        for (int i = 0; i < 40; i++)
        {
            var self = (await harness.JoinAsync(key, $"n{i}")).Response.Self;
            addresses.Add(self.Addresses[0]).Should().BeTrue();
            addresses.Add(self.Addresses[1]).Should().BeTrue();
        }
    }

    [Fact]
    public async Task ReRegistrationKeepsIdentityAcrossCallsAndServerRestarts()
    {
        using var directory = new TempDirectory();
        var node = TestNode.Create();
        RegisterResponse first;
        byte[] serverKey;
        await using (var harness = await CoordinationHarness.StartAsync(dataDirectory: directory.Path))
        {
            await harness.Server.CreateTailnetAsync("acme");
            var key = await harness.Server.CreateAuthKeyAsync("acme");
            var client = harness.NewNode(node);
            first = await client.RegisterAsync(key, "box");
            var again = await client.RegisterAsync(null, "box");
            again.Self.Should().BeEquivalentTo(first.Self, options => options.Excluding(n => n.Online));
            serverKey = harness.ServerKey;
        }

        await using (var restarted = await CoordinationHarness.StartAsync(dataDirectory: directory.Path))
        {
            restarted.ServerKey.Should().Equal(serverKey, "the server key is persisted");
            var client = new NodeClient(restarted.Channel, restarted.ServerKey, restarted.Clock, node);
            var afterRestart = await client.RegisterAsync("mnkey-ignoredignore-" + new string('x', 32), "renamed-box");
            afterRestart.Self.Id.Should().Be(first.Self.Id);
            afterRestart.Self.Addresses.Should().Equal(first.Self.Addresses);
            afterRestart.Self.Name.Should().Be("box", "the name stays when the hostname changes");
            afterRestart.Self.Hostname.Should().Be("renamed-box");
        }
        node.Dispose();
    }
}
