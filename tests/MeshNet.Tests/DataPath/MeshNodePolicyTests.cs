using System.Net;
using MeshNet.Control.V1;
using MeshNet.Tests.Support;

namespace MeshNet.Tests.DataPath;

/// <summary>
/// The tailnet policy as nodes enforce it, over real WireGuard on loopback with netmaps
/// written by the test (the coordination service's policy engine is tested elsewhere): denied
/// dials fail at once with <see cref="MeshErrorCode.PolicyDenied"/>, allowed ones work, the
/// status counts denials; WhoIs names the node and user behind an address.
/// </summary>
[Trait("Category", "Unit")]
public sealed class MeshNodePolicyTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private DetachedMesh _mesh = null!;

    private MeshNode Web => _mesh[0];

    private MeshNode Client => _mesh[1];

    public async Task InitializeAsync()
    {
        _mesh = await DetachedMesh.StartAsync(("web", ["tag:web"]), ("client", []));
        _mesh.Record(Client).User = "alice@example.com";
        // web admits the client on TCP 80 only; the client admits nothing.
        var rule = new FilterRule { Sources = { "100.64.0.2/32", "fd7a:115c:a1e0::2/128" }, Protocols = { 6 } };
        rule.Destinations.Add(new PortRange { Prefix = "*", FirstPort = 80, LastPort = 80 });
        _mesh.SetFilter(Web, enforced: true, version: 3, new FilterChunk { Name = "web", Rules = { rule } });
        _mesh.SetFilter(Client, enforced: true, version: 3);
        _mesh.Publish();
    }

    public async Task DisposeAsync() => await _mesh.DisposeAsync();

    [Fact]
    public async Task A_dial_the_policy_denies_fails_with_PolicyDenied_and_an_allowed_one_works()
    {
        await using var denied = await Web.ListenAsync(8080);
        await using var allowed = await Web.ListenAsync(80);

        var act = () => Client.DialAsync("web", 8080).AsTask().WaitAsync(Timeout);
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.PolicyDenied);
        error.Message.Should().Contain("policy").And.Contain("web port 8080");

        var accepting = allowed.AcceptAsync().AsTask();
        await using var connection = await Client.DialAsync("web", 80).AsTask().WaitAsync(Timeout);
        await using var accepted = await accepting.WaitAsync(Timeout);
        accepted.Peer.Name.Should().Be("client");
        await connection.WriteAsync(new byte[] { 1, 2, 3 }).AsTask().WaitAsync(Timeout);
        var buffer = new byte[3];
        await accepted.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
        buffer.Should().Equal(1, 2, 3);

        var status = Web.GetStatus();
        status.PolicyEnforced.Should().BeTrue();
        status.PolicyVersion.Should().Be(3);
        status.PacketsDeniedByPolicy.Should().BeGreaterThanOrEqualTo(1);
        status.PolicyDenials.Should().ContainKey(MeshPolicyDenialReason.NoRule);
        Client.GetStatus().PacketsDeniedByPolicy.Should().Be(0, "the client's deny-all filter admits the replies of its own connection");
    }

    [Fact]
    public async Task The_web_node_cannot_connect_to_the_client()
    {
        await using var listener = await Client.ListenAsync(80);
        var act = () => Web.DialAsync("client", 80).AsTask().WaitAsync(Timeout);
        (await act.Should().ThrowAsync<MeshException>()).Which.ErrorCode.Should().Be(MeshErrorCode.PolicyDenied);
    }

    [Fact]
    public async Task WhoIs_names_the_node_and_user_behind_an_address()
    {
        var client = await Web.WhoIsAsync(IPAddress.Parse("100.64.0.2"));
        client!.Name.Should().Be("client");
        client.User.Should().Be("alice@example.com");
        (await Web.WhoIsAsync(IPAddress.Parse("fd7a:115c:a1e0::2")))!.NodeId.Should().Be(2UL);

        var self = await Web.WhoIsAsync(IPAddress.Parse("100.64.0.1"));
        self!.Name.Should().Be("web");
        self.User.Should().BeEmpty("a tagged node belongs to no user");

        (await Web.WhoIsAsync(IPAddress.Parse("100.64.0.99"))).Should().BeNull();

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var act = () => Web.WhoIsAsync(IPAddress.Parse("100.64.0.2"), cancelled.Token).AsTask();
        await act.Should().ThrowAsync<OperationCanceledException>();
    }
}
