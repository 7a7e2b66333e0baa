using MeshNet.Control.V1;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests;

/// <summary>
/// Node-key expiry forces re-authentication: the service takes an expired key back only with a
/// valid auth key. A node with one re-authenticates by itself; a node without one reports
/// <see cref="MeshErrorCode.NodeKeyExpired"/> and cannot start until it is given one.
/// </summary>
[Trait("Category", "Integration")]
public sealed class KeyExpiryTests
{
    [Fact]
    public async Task ANodeWithoutAnAuthKeyReportsItsExpiredKeyAndComesBackOnlyWithANewAuthKey()
    {
        await using var tailnet = await TestTailnet.StartAsync();
        var oneOff = await tailnet.Server.CreateAuthKeyAsync("acme");
        var path = Path.Combine(tailnet.Directory, "web.json");
        var client = await tailnet.StartNodeAsync("client", await tailnet.Server.CreateAuthKeyAsync("acme"));
        await using (var first = await MeshNode.StartAsync(tailnet.Options("web", oneOff, new FileStateStore(path))))
        {
        }
        // Running from its saved identity, with no auth key.
        var web = await tailnet.StartNodeAsync(tailnet.Options("web", authKey: null, new FileStateStore(path)));
        var (id, addresses, oldKey) = (web.NodeId, web.Addresses, web.PublicKey);
        await TestTailnet.WaitForPeerAsync(client, "web");

        await tailnet.Admin.ExpireNodeKeyAsync(new ExpireNodeKeyRequest { Tailnet = "acme", Id = id }, tailnet.AdminHeaders);
        await TestTailnet.WaitUntilAsync(() => web.GetStatus().LastControlError == MeshErrorCode.NodeKeyExpired, "web to report its expired key");
        var status = web.GetStatus();
        status.ControlConnected.Should().BeFalse();
        status.LastControlErrorMessage.Should().Contain("expired").And.Contain("MeshNodeOptions.AuthKey");
        web.PublicKey.Should().Be(oldKey, "the old key's proof alone does not bring an expired key back, so the node does not rotate");
        await TestTailnet.WaitUntilAsync(() => client.GetStatus().Peers.Single(peer => peer.Name == "web") is { Configured: false },
            "client to stop using web's expired key");
        tailnet.Server.Counters.KeyRotations.Should().Be(0);

        // A restart without an auth key is refused with the same code...
        await web.DisposeAsync();
        var noKey = (await ((Func<Task>)(() => tailnet.StartNodeAsync(tailnet.Options("web", authKey: null, new FileStateStore(path)))))
            .Should().ThrowAsync<MeshException>()).Which;
        noKey.ErrorCode.Should().Be(MeshErrorCode.NodeKeyExpired);
        noKey.Message.Should().Contain("MeshNodeOptions.AuthKey");

        // ...with a used-up auth key it says that re-authentication failed and why...
        var usedUp = (await ((Func<Task>)(() => tailnet.StartNodeAsync(tailnet.Options("web", oneOff, new FileStateStore(path)))))
            .Should().ThrowAsync<MeshException>()).Which;
        usedUp.ErrorCode.Should().Be(MeshErrorCode.AuthKeyUsedUp);
        usedUp.Message.Should().Contain("key has expired and re-authenticating");

        // ...and with a valid one the node comes back as itself, under a new key, and is reachable.
        var fresh = await tailnet.Server.CreateAuthKeyAsync("acme");
        var back = await tailnet.StartNodeAsync(tailnet.Options("web", fresh, new FileStateStore(path)));
        back.NodeId.Should().Be(id);
        back.Name.Should().Be("web");
        back.Addresses.Should().Equal(addresses);
        back.PublicKey.Should().NotBe(oldKey);
        back.GetStatus().KeyExpiry.Should().BeAfter(DateTimeOffset.UtcNow.AddDays(179));
        await TestTailnet.WaitUntilAsync(() => client.GetStatus().Peers.Single(peer => peer.Name == "web") is { Configured: true } peer
            && peer.PublicKey!.Equals(back.PublicKey), "client to take web's new key");
        await using var listener = await back.ListenAsync(80);
        var accepting = listener.AcceptAsync().AsTask();
        await using var dialed = await client.DialAsync("web", 80).AsTask().WaitAsync(TestTailnet.Timeout);
        await using var accepted = await accepting.WaitAsync(TestTailnet.Timeout);
        (await TestTailnet.ExchangeAsync(dialed, accepted, "welcome back")).Should().Be("welcome back");
        tailnet.Server.Counters.KeyRotations.Should().Be(1);
    }

    [Fact]
    public async Task ARunningNodeWithAValidAuthKeyReauthenticatesByItselfWhenAnAdministratorExpiresItsKey()
    {
        await using var tailnet = await TestTailnet.StartAsync();
        var reusable = await tailnet.Admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "acme", Reusable = true }, tailnet.AdminHeaders);
        var a = await tailnet.StartNodeAsync("a", reusable.Secret);
        var b = await tailnet.StartNodeAsync("b", reusable.Secret);
        await TestTailnet.WaitForPeerAsync(b, "a");
        var (id, oldKey) = (a.NodeId, a.PublicKey);

        await tailnet.Admin.ExpireNodeKeyAsync(new ExpireNodeKeyRequest { Tailnet = "acme", Id = id }, tailnet.AdminHeaders);
        await TestTailnet.WaitUntilAsync(() => !a.PublicKey.Equals(oldKey) && a.GetStatus().ControlConnected
            && b.GetStatus().Peers.Any(peer => peer.Name == "a" && peer.Configured && peer.PublicKey!.Equals(a.PublicKey)),
            "a to re-authenticate and b to learn its new key");
        a.NodeId.Should().Be(id);
        a.GetStatus().KeyExpiry.Should().BeAfter(DateTimeOffset.UtcNow.AddDays(179));
        var keys = await tailnet.Admin.ListAuthKeysAsync(new ListAuthKeysRequest { Tailnet = "acme" }, tailnet.AdminHeaders);
        keys.Keys.Single().Uses.Should().Be(3, "two joins and one re-authentication used the key");
    }
}
