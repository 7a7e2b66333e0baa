using System.Diagnostics;
using System.Net.Http;
using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;

namespace MeshNet.Bench.ControlFanout;

/// <summary>One node count: start a server, connect the simulated nodes, measure the reference and policy waves and the memory.</summary>
internal static class FanoutScenario
{
    public const string OwnersAndClientRule = """
        {
          // Every node of the benchmark is tagged by its auth key.
          "tagOwners": { "tag:client": ["admin@example.com"], "tag:server": ["admin@example.com"] },
          "acls": [
            { "action": "accept", "src": ["tag:client"], "dst": ["tag:server:80"] },
          ],
        }
        """;

    public const string WithMonitoringRule = """
        {
          "tagOwners": { "tag:client": ["admin@example.com"], "tag:server": ["admin@example.com"] },
          "acls": [
            { "action": "accept", "src": ["tag:client"], "dst": ["tag:server:80"] },
            // Servers scrape every client: each client gets one new filter chunk.
            { "action": "accept", "src": ["tag:server"], "dst": ["tag:client:9100"], "proto": "tcp" },
          ],
        }
        """;

    private static readonly TimeSpan WaveTimeout = TimeSpan.FromSeconds(60);

    public static async Task<FanoutResult> RunAsync(int nodeCount, FanoutOptions options, CancellationToken cancellationToken)
    {
        var result = new FanoutResult { Nodes = nodeCount };
        await using var server = await ServerProcess.StartAsync(cancellationToken);
        using var adminChannel = GrpcChannel.ForAddress(server.Url);
        var admin = new Admin.AdminClient(adminChannel);
        var headers = new Metadata { { "authorization", $"Bearer {server.AdminToken}" } };
        await admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "bench" }, headers, cancellationToken: cancellationToken);
        var first = await admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "bench", Policy = OwnersAndClientRule }, headers, cancellationToken: cancellationToken);
        ulong version = first.Version;
        string clientKey = await CreateKeyAsync(admin, headers, "tag:client", cancellationToken);
        string serverKey = await CreateKeyAsync(admin, headers, "tag:server", cancellationToken);
        var baseline = await server.MeasureMemoryAsync(cancellationToken);

        var channels = Enumerable.Range(0, options.Connections).Select(_ => GrpcChannel.ForAddress(server.Url, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan },
            MaxReceiveMessageSize = 64 << 20,
        })).ToArray();
        var serverInfo = await new Control.V1.Control.ControlClient(channels[0]).GetServerInfoAsync(new GetServerInfoRequest(), cancellationToken: cancellationToken);
        byte[] serverPublicKey = serverInfo.ServerKey.ToByteArray();
        var wave = new StrongBox<FanoutWave?>();
        int clientCount = nodeCount - options.Servers;
        var clients = Enumerable.Range(0, clientCount).Select(i => new SimulatedNode(channels[i % channels.Length], serverPublicKey, wave, participant: true)).ToArray();
        var servers = Enumerable.Range(0, options.Servers).Select(i => new SimulatedNode(channels[i % channels.Length], serverPublicKey, wave, participant: false)).ToArray();
        try
        {
            var started = Stopwatch.StartNew();
            await Parallel.ForEachAsync(clients.Select((node, i) => (node, i)), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = cancellationToken },
                async (item, ct) => await item.node.RegisterAsync(clientKey, $"client-{item.i}", ct));
            await Parallel.ForEachAsync(servers.Select((node, i) => (node, i)), cancellationToken,
                async (item, ct) => await item.node.RegisterAsync(serverKey, $"server-{item.i}", ct));
            result.RegistrationsPerSecond = nodeCount / started.Elapsed.TotalSeconds;

            // Clients first, then the servers (which see every client), as a fleet comes up.
            started.Restart();
            foreach (var node in clients)
            {
                node.StartStream();
            }
            await Task.WhenAll(clients.Select(node => node.FullMapApplied)).WaitAsync(TimeSpan.FromMinutes(5), cancellationToken);
            foreach (var node in servers)
            {
                node.StartStream();
            }
            await Task.WhenAll(servers.Select(node => node.FullMapApplied)).WaitAsync(TimeSpan.FromMinutes(5), cancellationToken);
            result.ConnectSeconds = started.Elapsed.TotalSeconds;
            result.ClientPeers = clients[0].PeerCount;
            result.ServerPeers = servers[0].PeerCount;
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            var connected = await server.MeasureMemoryAsync(cancellationToken);
            result.ManagedBytesPerNode = (double)(connected.Managed - baseline.Managed) / nodeCount;
            result.WorkingSetBytesPerNode = (double)(connected.WorkingSet - baseline.WorkingSet) / nodeCount;

            // The reference: a server's endpoint patch reaches every client (no policy work).
            var announcer = servers[0];
            for (int round = 0; round < options.Saves; round++)
            {
                string marker = $"192.0.2.1:{10_000 + round}";
                ulong announcerId = announcer.Id;
                var current = new FanoutWave(delta => delta.Patches.Any(p => p.Id == announcerId && p.Endpoints is { } e && e.Values.Contains(marker)), clientCount);
                wave.Value = current;
                current.Start();
                await announcer.UpdateEndpointsAsync(marker, cancellationToken);
                result.Reference.Add(await FinishAsync(current, cancellationToken));
            }

            // Policy saves, alternately adding and removing the clients' chunk.
            for (int round = 0; round < options.Saves; round++)
            {
                ulong previous = version;
                var current = new FanoutWave(delta => delta.HasPolicyVersion && delta.PolicyVersion > previous, clientCount);
                wave.Value = current;
                var rpc = Stopwatch.StartNew();
                current.Start();
                var saved = await admin.SetPolicyAsync(new SetPolicyRequest { Tailnet = "bench", Policy = round % 2 == 0 ? WithMonitoringRule : OwnersAndClientRule },
                    headers, cancellationToken: cancellationToken);
                result.SaveRpcMs.Add(rpc.Elapsed.TotalMilliseconds);
                version = saved.Version;
                result.NodesAffected = saved.NodesAffected;
                result.Policy.Add(await FinishAsync(current, cancellationToken));
            }
            wave.Value = null;
            result.Reconnects = clients.Sum(n => n.Reconnects) + servers.Sum(n => n.Reconnects);
            return result;
        }
        finally
        {
            await Task.WhenAll(clients.Concat(servers).Select(node => node.DisposeAsync().AsTask()));
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    private static async Task<WaveOutcome> FinishAsync(FanoutWave wave, CancellationToken cancellationToken)
    {
        try
        {
            await wave.Done.WaitAsync(WaveTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            return new WaveOutcome(double.NaN, [.. wave.Latencies], wave.BytesPerDelta, wave.Arrived, wave.Expected);
        }
        await Task.Delay(50, cancellationToken); // lets stragglers' latency writes land before copying
        return new WaveOutcome(wave.LastMs, [.. wave.Latencies], wave.BytesPerDelta, wave.Arrived, wave.Expected);
    }

    private static async Task<string> CreateKeyAsync(Admin.AdminClient admin, Metadata headers, string tag, CancellationToken cancellationToken)
    {
        var request = new CreateAuthKeyRequest { Tailnet = "bench", Reusable = true, Description = $"benchmark {tag}" };
        request.Tags.Add(tag);
        var response = await admin.CreateAuthKeyAsync(request, headers, cancellationToken: cancellationToken);
        return response.Secret;
    }
}
