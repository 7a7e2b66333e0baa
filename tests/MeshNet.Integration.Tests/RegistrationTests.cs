using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Integration.Tests;

/// <summary>Joining with auth keys (every refusal with its code and a clear message) and restarting with a saved identity.</summary>
[Trait("Category", "Integration")]
public sealed class RegistrationTests
{
    [Fact]
    public async Task EveryAuthKeyRefusalIsAMeshExceptionWithItsCodeAndAClearMessage()
    {
        // The service's clock is fake so that an auth key expires when the test says (nodes keep
        // real time; the skew allowance covers the jump).
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var tailnet = await TestTailnet.StartAsync(options =>
        {
            options.TimeProvider = clock;
            options.Configure = coordination => coordination.MaxClockSkew = TimeSpan.FromHours(1);
        });
        var admin = tailnet.Admin;
        async Task<string> KeyAsync(bool reusable = false, TimeSpan? lifetime = null, params string[] tags)
        {
            var request = new CreateAuthKeyRequest { Tailnet = "acme", Reusable = reusable };
            request.Tags.Add(tags);
            if (lifetime is { } span)
            {
                request.Lifetime = Duration.FromTimeSpan(span);
            }
            return (await admin.CreateAuthKeyAsync(request, tailnet.AdminHeaders)).Secret;
        }

        var oneOff = await KeyAsync();
        await tailnet.StartNodeAsync("first", oneOff);
        var shortLived = await KeyAsync(reusable: true, lifetime: TimeSpan.FromMinutes(1));
        var revoked = await admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", Reusable = true }, tailnet.AdminHeaders);
        await admin.RevokeAuthKeyAsync(new RevokeAuthKeyRequest { Id = revoked.Key.Id }, tailnet.AdminHeaders);
        var webOnly = await KeyAsync(reusable: true, tags: "tag:web");
        clock.Advance(TimeSpan.FromMinutes(2));

        var cases = new (string? Key, string[] Tags, MeshErrorCode Code, string Says)[]
        {
            (null, [], MeshErrorCode.AuthKeyRequired, "no auth key was given"),
            ("mnkey-nope", [], MeshErrorCode.AuthKeyUnknown, "not known"),
            ("mnkey-abcdefgh-0123456789abcdef0123456789abcdef", [], MeshErrorCode.AuthKeyUnknown, "not known"),
            (shortLived, [], MeshErrorCode.AuthKeyExpired, "has expired"),
            (oneOff, [], MeshErrorCode.AuthKeyUsedUp, "already used"),
            (revoked.Secret, [], MeshErrorCode.AuthKeyRevoked, "revoked"),
            (webOnly, ["tag:web", "tag:admin"], MeshErrorCode.TagsNotPermitted, "tag:admin"),
        };
        foreach (var (key, tags, code, says) in cases)
        {
            var options = tailnet.Options("refused", key);
            options.Tags = tags;
            var started = DateTime.UtcNow;
            var exception = (await ((Func<Task>)(() => tailnet.StartNodeAsync(options))).Should().ThrowAsync<MeshException>()).Which;
            exception.ErrorCode.Should().Be(code, exception.Message);
            exception.Message.Should().Contain(says).And.Contain(tailnet.Server.Url, "the message names the service");
            if (key is not null)
            {
                exception.Message.Should().NotContain(key).And.NotContain(key["mnkey-".Length..], "an auth key is never shown");
            }
            (DateTime.UtcNow - started).Should().BeLessThan(TimeSpan.FromSeconds(10), "a refusal for good fails at once, not at the start timeout");
        }

        // The tags the key grants are fine.
        var tagged = tailnet.Options("web", webOnly);
        tagged.Tags = ["tag:web"];
        (await tailnet.StartNodeAsync(tagged)).GetStatus().Self.Tags.Should().Equal("tag:web");
    }

    [Fact]
    public async Task ARestartWithTheSameStateFileKeepsNameAddressesAndKeyAndPeersDialItAgain()
    {
        await using var tailnet = await TestTailnet.StartAsync();
        var oneOff = await tailnet.Server.CreateAuthKeyAsync("acme");
        var path = Path.Combine(tailnet.Directory, "web", "meshnet.json");
        var client = await tailnet.StartNodeAsync("client", await tailnet.Server.CreateAuthKeyAsync("acme"));

        var web = await MeshNode.StartAsync(tailnet.Options("web", oneOff, new FileStateStore(path)));
        var (name, addresses, key, id) = (web.Name, web.Addresses, web.PublicKey, web.NodeId);
        await TestTailnet.WaitForPeerAsync(client, "web");
        await DialAsync(client, web, "web", "before");
        await web.DisposeAsync();
        await TestTailnet.WaitUntilAsync(() => !client.GetStatus().Peers.Single(peer => peer.Name == "web").Online, "client to see web offline");

        // The one-off key is used up: the restart needs none, the saved identity is enough.
        var again = await tailnet.StartNodeAsync(tailnet.Options("web", authKey: null, new FileStateStore(path)));
        again.Name.Should().Be(name);
        again.Addresses.Should().Equal(addresses);
        again.PublicKey.Should().Be(key);
        again.NodeId.Should().Be(id);
        await TestTailnet.WaitUntilAsync(() => client.GetStatus().Peers.Single(peer => peer.Name == "web").Online, "client to see web online again");
        client.GetStatus().Peers.Single(peer => peer.Name == "web").Addresses.Should().Equal(addresses);
        (await tailnet.Admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, tailnet.AdminHeaders)).Nodes.Should().HaveCount(2,
            "the restart is the same node, not a new one");

        // The addresses the client knew still reach it, by name and as literals of both families.
        var started = DateTime.UtcNow;
        await DialAsync(client, again, "web", "by name");
        (DateTime.UtcNow - started).Should().BeLessThan(TimeSpan.FromSeconds(10),
            "the client restarts its WireGuard session when web connects with a new run id (its key and port are the same), instead of waiting out WireGuard's 15-second dead-peer retry (milliseconds, not 15 s and more)");
        await DialAsync(client, again, addresses[0].ToString(), "by IPv4");
        await DialAsync(client, again, addresses[1].ToString(), "by IPv6");
    }

    private static async Task DialAsync(MeshNode from, MeshNode to, string target, string text)
    {
        await using var listener = await to.ListenAsync(0);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await from.DialAsync(target, listener.Port).AsTask().WaitAsync(TestTailnet.Timeout);
        await using var accepted = await accepting.WaitAsync(TestTailnet.Timeout);
        (await TestTailnet.ExchangeAsync(dialed, accepted, text)).Should().Be(text);
    }
}
