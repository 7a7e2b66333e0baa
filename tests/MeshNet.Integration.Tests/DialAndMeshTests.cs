using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests;

/// <summary>Dialing by name and by address of either family, and a full mesh where every ordered pair exchanges data.</summary>
[Trait("Category", "Integration")]
public sealed class DialAndMeshTests : IAsyncLifetime
{
    private TestTailnet _tailnet = null!;

    public async Task InitializeAsync() => _tailnet = await TestTailnet.StartAsync();

    public async Task DisposeAsync() => await _tailnet.DisposeAsync();

    [Fact]
    public async Task ANodeIsDialedByNameByFqdnByIPv4AndByIPv6Address()
    {
        var key = await _tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var server = await _tailnet.StartNodeAsync("server", key);
        var client = await _tailnet.StartNodeAsync("client", key);
        await TestTailnet.WaitForPeerAsync(server, "client");
        var ipv4 = server.Addresses.Single(address => address.AddressFamily == AddressFamily.InterNetwork);
        var ipv6 = server.Addresses.Single(address => address.AddressFamily == AddressFamily.InterNetworkV6);
        ipv6.ToString().Should().StartWith("fd7a:115c:a1e0:");
        await using var listener = await server.ListenAsync(8080);

        foreach (var (target, family) in new[]
        {
            ("server", AddressFamily.InterNetwork),                  // a name dials IPv4 first
            ($"server.{_tailnet.Domain}", AddressFamily.InterNetwork),
            (ipv4.ToString(), AddressFamily.InterNetwork),
            (ipv6.ToString(), AddressFamily.InterNetworkV6),
        })
        {
            var accepting = listener.AcceptAsync().AsTask();
            await using var dialed = await client.DialAsync(target, 8080).AsTask().WaitAsync(TestTailnet.Timeout);
            await using var accepted = await accepting.WaitAsync(TestTailnet.Timeout);
            dialed.RemoteEndPoint.AddressFamily.Should().Be(family, target);
            dialed.RemoteEndPoint.Address.Should().Be(family == AddressFamily.InterNetwork ? ipv4 : ipv6, target);
            dialed.RemoteEndPoint.Port.Should().Be(8080);
            accepted.RemoteEndPoint.Should().Be(dialed.LocalEndPoint, "both ends agree on the connection's addresses");
            dialed.Peer.Name.Should().Be("server");
            accepted.Peer.Name.Should().Be("client");
            (await TestTailnet.ExchangeAsync(dialed, accepted, $"request to {target}")).Should().Be($"request to {target}");
            (await TestTailnet.ExchangeAsync(accepted, dialed, $"answer from {target}")).Should().Be($"answer from {target}");
        }

        // A name that is not in the tailnet, and an address that is no node's, are refused before any packet is sent.
        (await ((Func<Task>)(() => client.DialAsync("nobody", 8080).AsTask())).Should().ThrowAsync<MeshException>())
            .Which.ErrorCode.Should().Be(MeshErrorCode.PeerNotFound);
    }

    [Fact]
    public async Task EightNodesFormAFullMeshAndEveryOrderedPairExchangesData()
    {
        const int count = 8;
        const int port = 7000;
        var key = await _tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var nodes = await Task.WhenAll(Enumerable.Range(0, count).Select(i => _tailnet.StartNodeAsync($"n{i}", key)));
        foreach (var node in nodes)
        {
            await TestTailnet.WaitUntilAsync(() => node.GetStatus().Peers.Count(peer => peer.Online) == count - 1,
                $"{node.Name} to see its {count - 1} peers online");
        }

        // Every node serves an echo that prefixes what it reads with its own name and the caller's.
        var serving = new List<Task>();
        foreach (var node in nodes)
        {
            serving.Add(ServeEchoAsync(node, _tailnet.Own(await node.ListenAsync(port)), count - 1));
        }

        // Every ordered pair (56 connections), all at once: a payload of its own, read back through the peer.
        var pairs = from a in nodes from b in nodes where a != b select (From: a, To: b);
        var results = await Task.WhenAll(pairs.Select(async pair =>
        {
            var payload = RandomNumberGenerator.GetBytes(4096 + Random.Shared.Next(4096));
            await using var connection = await pair.From.DialAsync(pair.To.Name, port).AsTask().WaitAsync(TestTailnet.Timeout);
            connection.Peer.Name.Should().Be(pair.To.Name);
            var header = System.Text.Encoding.ASCII.GetBytes($"{payload.Length:D6}");
            await connection.WriteAsync(header);
            await connection.WriteAsync(payload);
            var answer = new byte[payload.Length];
            var banner = new byte[32];
            await connection.ReadExactlyAsync(banner).AsTask().WaitAsync(TestTailnet.Timeout);
            await connection.ReadExactlyAsync(answer).AsTask().WaitAsync(TestTailnet.Timeout);
            return (pair.From, pair.To, Banner: System.Text.Encoding.ASCII.GetString(banner).TrimEnd(), Equal: answer.AsSpan().SequenceEqual(payload));
        }));

        results.Should().HaveCount(count * (count - 1));
        foreach (var result in results)
        {
            result.Equal.Should().BeTrue($"{result.From.Name} -> {result.To.Name} reads its own payload back");
            result.Banner.Should().Be($"{result.To.Name} heard {result.From.Name}");
        }
        await Task.WhenAll(serving).WaitAsync(TestTailnet.Timeout);

        // Each node has a WireGuard session with every other node, and counted traffic both ways.
        foreach (var node in nodes)
        {
            var peers = node.GetStatus().Peers;
            peers.Should().HaveCount(count - 1);
            peers.Should().OnlyContain(peer => peer.LastHandshake != null && peer.BytesSent > 8192 && peer.BytesReceived > 8192, node.Name);
        }
    }

    /// <summary>Accepts <paramref name="connections"/> connections, each answered with a banner and its payload.</summary>
    private static async Task ServeEchoAsync(MeshNode node, MeshListener listener, int connections)
    {
        var handlers = new List<Task>();
        for (int i = 0; i < connections; i++)
        {
            var connection = await listener.AcceptAsync().AsTask().WaitAsync(TestTailnet.Timeout);
            handlers.Add(Task.Run(async () =>
            {
                await using (connection)
                {
                    var header = new byte[6];
                    await connection.ReadExactlyAsync(header);
                    var payload = new byte[int.Parse(System.Text.Encoding.ASCII.GetString(header), System.Globalization.CultureInfo.InvariantCulture)];
                    await connection.ReadExactlyAsync(payload);
                    var banner = System.Text.Encoding.ASCII.GetBytes($"{node.Name} heard {connection.Peer.Name}".PadRight(32));
                    await connection.WriteAsync(banner);
                    await connection.WriteAsync(payload);
                    await connection.ShutdownWriteAsync();
                }
            }));
        }
        await Task.WhenAll(handlers);
    }
}
