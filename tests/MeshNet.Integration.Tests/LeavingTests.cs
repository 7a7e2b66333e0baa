using Grpc.Core;
using MeshNet.Control.V1;
using MeshNet.Coordination;
using MeshNet.Integration.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Integration.Tests;

/// <summary>
/// Nodes leaving a tailnet, as their peers see it. "Leaving" has three meanings here: a disposed
/// node that is not ephemeral stays in its peers' netmaps, shown offline (it may come back with
/// its identity); a node deleted through the Admin API disappears from every peer; an ephemeral
/// node disappears once it has been offline for the service's <c>EphemeralNodeTimeout</c>.
/// </summary>
[Trait("Category", "Integration")]
public sealed class LeavingTests
{
    [Fact]
    public async Task ADisposedNodeShowsOfflineADeletedNodeAndAnIdleEphemeralNodeDisappearFromEveryPeer()
    {
        // The service's clock is fake, so that the ephemeral timeout passes when the test says so;
        // it starts at the real time and nodes keep real time (the skew allowance covers the jump).
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var tailnet = await TestTailnet.StartAsync(options =>
        {
            options.TimeProvider = clock;
            options.Configure = coordination =>
            {
                coordination.EphemeralNodeTimeout = TimeSpan.FromMinutes(5);
                coordination.MaintenanceInterval = TimeSpan.FromSeconds(10);
                coordination.MaxClockSkew = TimeSpan.FromHours(1);
            };
        });
        var durable = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var ephemeral = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true, ephemeral: true);
        var watchers = new[] { await tailnet.StartNodeAsync("w1", durable), await tailnet.StartNodeAsync("w2", durable) };
        var sleeper = await tailnet.StartNodeAsync("sleeper", durable);
        var deleted = await tailnet.StartNodeAsync("deleted", durable);
        var temporary = await tailnet.StartNodeAsync("temporary", ephemeral);
        var deletedAddress = deleted.Addresses[0];
        foreach (var watcher in watchers)
        {
            await TestTailnet.WaitUntilAsync(() => watcher.GetStatus().Peers.Count(peer => peer.Online) == 4, $"{watcher.Name} to see every peer online");
        }

        // Disposed, not ephemeral: still a peer, offline, with a last-seen time.
        await sleeper.DisposeAsync();
        foreach (var watcher in watchers)
        {
            await TestTailnet.WaitUntilAsync(() => watcher.GetStatus().Peers.Single(peer => peer.Name == "sleeper") is { Online: false, LastSeen: not null },
                $"{watcher.Name} to see sleeper offline");
        }

        // Deleted by an administrator: gone from every peer, no longer resolvable; the node itself is cut off.
        var id = (await tailnet.Admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, tailnet.AdminHeaders))
            .Nodes.Single(node => node.Name == "deleted").Id;
        await tailnet.Admin.DeleteNodeAsync(new DeleteNodeRequest { Tailnet = "acme", Id = id }, tailnet.AdminHeaders);
        foreach (var watcher in watchers.Append(temporary))
        {
            await TestTailnet.WaitUntilAsync(() => watcher.GetStatus().Peers.All(peer => peer.Name != "deleted"), $"{watcher.Name} to forget the deleted node");
            watcher.FindPeer(deletedAddress).Should().BeNull();
            watcher.Invoking(node => node.ResolveAddresses("deleted")).Should().Throw<MeshException>()
                .Which.ErrorCode.Should().Be(MeshErrorCode.PeerNotFound);
        }
        await TestTailnet.WaitUntilAsync(() => !deleted.GetStatus().ControlConnected, "the deleted node to be disconnected");
        deleted.GetStatus().LastControlError.Should().Be(MeshErrorCode.AuthKeyRequired, "the service no longer knows the node");

        // Ephemeral: offline first, then removed once the timeout has passed on the service's clock.
        await temporary.DisposeAsync();
        foreach (var watcher in watchers)
        {
            await TestTailnet.WaitUntilAsync(() => watcher.GetStatus().Peers.Single(peer => peer.Name == "temporary").Online == false,
                $"{watcher.Name} to see the ephemeral node offline");
        }
        clock.Advance(TimeSpan.FromMinutes(4));
        await Task.Delay(200); // a maintenance pass runs here: too early to remove anything
        watchers[0].GetStatus().Peers.Should().Contain(peer => peer.Name == "temporary");
        clock.Advance(TimeSpan.FromMinutes(2)); // the timer's next passes see the node idle for longer than the timeout
        foreach (var watcher in watchers)
        {
            await TestTailnet.WaitUntilAsync(() => watcher.GetStatus().Peers.All(peer => peer.Name != "temporary"),
                $"{watcher.Name} to forget the ephemeral node");
        }
        tailnet.Server.Counters.EphemeralNodesRemoved.Should().Be(1);
        (await tailnet.Admin.ListNodesAsync(new ListNodesRequest { Tailnet = "acme" }, tailnet.AdminHeaders))
            .Nodes.Select(node => node.Name).Should().BeEquivalentTo("w1", "w2", "sleeper");

        // The durable node that only went offline is still there for everyone.
        foreach (var watcher in watchers)
        {
            watcher.GetStatus().Peers.Select(peer => peer.Name).Should().BeEquivalentTo(watcher.Name == "w1" ? "w2" : "w1", "sleeper");
        }
    }
}
