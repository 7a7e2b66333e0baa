using MeshNet.Control.V1;
using MeshNet.Sharding.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace MeshNet.Sharding.Tests;

/// <summary>
/// Test 6: policy saves, registrations (with a reusable key) and one-off auth-key uses run while
/// the tailnet is moved and its owner killed, again and again. Afterwards every acknowledged write
/// is in the final state exactly once, the nodes received the changes in commit order, and no
/// write that was not acknowledged is half-applied (a one-off key used without its node, or a node
/// without its change).
/// </summary>
[Collection(PostgresFixture.Collection)]
[Trait("Category", "Sharding")]
public sealed class WritesThroughFaultsTests(PostgresFixture postgres, ITestOutputHelper output)
{
    private const int Faults = 8;
    private const int OneOffKeys = 60;

    /// <summary>The change-log kind of a registration (as the store writes it).</summary>
    private const string NodeAdded = "node-added";

    [PostgresFact]
    public async Task EveryAcknowledgedWriteLandsOnceInCommitOrderAndNothingIsHalfApplied()
    {
        await using var deployment = await ShardedDeployment.StartAsync(postgres.Cluster, servers: 3);
        var reusable = await deployment.CreateTailnetAsync("w");
        var oneOff = new List<(string Id, string Secret)>();
        for (int i = 0; i < OneOffKeys; i++)
        {
            var created = await deployment.CallAsync(admin => admin.CreateAuthKeyAsync(
                new CreateAuthKeyRequest { Tailnet = "w", Reusable = false, Lifetime = new() { Seconds = 86400 } },
                ShardedDeployment.AdminHeaders($"one-off-{i}")).ResponseAsync);
            oneOff.Add((created.Key.Id, created.Secret));
        }
        await using var observers = await NodeFleet.JoinAsync(deployment, reusable, 8, "observer");

        using var stop = new CancellationTokenSource();
        var writer = new PolicyWriter(deployment, "w");
        var saving = writer.RunAsync(TimeSpan.FromMilliseconds(50), stop.Token);
        var registrations = new Registrations(deployment, reusable, oneOff);
        var registering = registrations.RunAsync(stop.Token);

        var faults = new List<string>();
        for (int i = 0; i < Faults; i++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(1500 + Random.Shared.Next(1000)));
            var owner = await deployment.OwnerAsync("w");
            if (i % 2 == 0)
            {
                var target = deployment.Servers.Where(server => server != owner.Server && server.IsServing).ElementAt(Random.Shared.Next(2));
                var moved = await deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = "w", TargetServer = target.ServerId },
                    ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);
                faults.Add($"move {moved.FromServer}->{moved.ToServer}");
            }
            else
            {
                await owner.Server.KillAsync();
                var standby = await deployment.OwnerAsync("w", not: owner.Server.ServerId);
                faults.Add($"kill {owner.Server.ServerId}, {standby.Server.ServerId} took over");
                await owner.Server.RestartAsync();
            }
        }
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        await saving;
        await registering;

        // Quiet now: every observer catches up with the final state.
        var audit = await ChangeLogAudit.ReadAsync(deployment.ConnectionString);
        var state = await StoredState.ReadAsync(deployment.ConnectionString, "w");
        await observers.WaitAllAsync(node => !node.InGap && node.PolicyVersion == state.PolicyVersion && node.PeerCount == state.NodeIds.Count - 1,
            $"caught up with policy version {state.PolicyVersion} and {state.NodeIds.Count} nodes");
        output.WriteLine($"faults: {string.Join("; ", faults)}");
        int appliedAnyway = registrations.Unacknowledged.Count(attempt => state.NodeIdOf(attempt.NodeKey) is not null);
        output.WriteLine($"{writer.Acknowledged.Count} policy saves acknowledged; registrations {registrations.Acknowledged.Count} acknowledged, " +
            $"{registrations.Unacknowledged.Count} not ({appliedAnyway} of them applied whole); {state.NodeIds.Count} nodes; " +
            $"{audit.Changes.Count(c => c.Tailnet == "w")} changes");
        registrations.Unacknowledged.Should().NotBeEmpty("some registrations were given up on during the faults");

        audit.Problems().Should().BeEmpty("the change log is contiguous and no epoch committed after a later one");

        // Policy saves: each acknowledged one exactly once (WithKey is Single), with the version acknowledged.
        foreach (var (key, version) in writer.Acknowledged)
        {
            audit.WithKey("w", key).Should().NotBeNull($"the acknowledged save {key} is in the log").And.Match<ChangeLogAudit.Change>(
                change => change.Detail == version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        // Registrations: each acknowledged node exists once, with its key, and was added by exactly one change.
        foreach (var registered in registrations.Acknowledged)
        {
            state.NodeIdOf(registered.NodeKey).Should().Be(registered.NodeId, "an acknowledged registration is in the final state");
            audit.Changes.Count(c => c.Tailnet == "w" && c.Kind == NodeAdded && c.NodeId == (long)registered.NodeId).Should().Be(1);
            if (registered.AuthKeyId is { } keyId)
            {
                state.Uses[keyId].Should().Be(1, "an acknowledged one-off use counts once");
            }
        }
        // Not acknowledged: applied entirely or not at all.
        foreach (var attempt in registrations.Unacknowledged)
        {
            if (state.NodeIdOf(attempt.NodeKey) is { } id)
            {
                audit.Changes.Count(c => c.Tailnet == "w" && c.Kind == NodeAdded && c.NodeId == (long)id).Should().Be(1);
            }
        }
        foreach (var (keyId, _) in oneOff)
        {
            state.Uses[keyId].Should().Be(state.NodesByAuthKey.GetValueOrDefault(keyId), $"one-off key {keyId} is used exactly as often as nodes hold it");
            state.Uses[keyId].Should().BeLessThanOrEqualTo(1);
        }

        // Commit order at the nodes: revisions and policy versions never go back, sequences are contiguous.
        observers.Problems(allowFullMaps: true).Should().BeEmpty();
        foreach (var node in observers.Nodes)
        {
            var events = node.Events;
            events.Select(e => e.Revision).Should().BeInAscendingOrder($"{node.Name} applied changes in commit order");
            events.Select(e => e.PolicyVersion).Should().BeInAscendingOrder($"{node.Name} never went back to an older policy");
        }
    }

    /// <summary>Registers new nodes one after another, alternating the reusable key and one-off keys.</summary>
    private sealed class Registrations(ShardedDeployment deployment, string reusable, List<(string Id, string Secret)> oneOff)
    {
        public List<(byte[] NodeKey, ulong NodeId, string? AuthKeyId)> Acknowledged { get; } = [];

        public List<(byte[] NodeKey, string? AuthKeyId)> Unacknowledged { get; } = [];

        public async Task RunAsync(CancellationToken stop)
        {
            int next = 0;
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                (string Id, string Secret)? key = i % 2 == 1 && next < oneOff.Count ? oneOff[next++] : null;
                await using var node = ControlOnlyNode.Create(deployment.Urls);
                // Short, varied patience: during a fault some registrations are given up on while a
                // server may still be committing them, which is what must never be half-applied.
                using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(1000 + Random.Shared.Next(1500)));
                try
                {
                    await node.RegisterAsync(key?.Secret ?? reusable, $"r{i}", timeout.Token);
                    Acknowledged.Add((node.NodeKey, node.NodeId, key?.Id));
                }
                catch (Exception exception) when (exception is Grpc.Core.RpcException or OperationCanceledException or HttpRequestException)
                {
                    Unacknowledged.Add((node.NodeKey, key?.Id));
                }
                await Task.Delay(100, CancellationToken.None);
            }
        }
    }

    /// <summary>The tailnet's stored nodes, auth-key uses and policy version, read from PostgreSQL in one snapshot.</summary>
    private sealed record StoredState(ulong PolicyVersion, Dictionary<string, ulong> NodeIds, Dictionary<string, int> Uses, Dictionary<string, int> NodesByAuthKey)
    {
        public ulong? NodeIdOf(byte[] key) => NodeIds.TryGetValue(Convert.ToHexString(key), out var id) ? id : null;

        public static async Task<StoredState> ReadAsync(string connectionString, string tailnet)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var snapshot = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
            var nodes = new Dictionary<string, ulong>();
            var byKey = new Dictionary<string, int>();
            await using (var command = new NpgsqlCommand("SELECT node_key, id, auth_key_id FROM nodes WHERE tailnet = @t", connection, snapshot))
            {
                command.Parameters.AddWithValue("t", tailnet);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    nodes.Add(Convert.ToHexString((byte[])reader[0]), (ulong)reader.GetInt64(1));
                    if (!reader.IsDBNull(2))
                    {
                        byKey[reader.GetString(2)] = byKey.GetValueOrDefault(reader.GetString(2)) + 1;
                    }
                }
            }
            var uses = new Dictionary<string, int>();
            await using (var command = new NpgsqlCommand("SELECT id, uses FROM auth_keys WHERE tailnet = @t", connection, snapshot))
            {
                command.Parameters.AddWithValue("t", tailnet);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    uses.Add(reader.GetString(0), reader.GetInt32(1));
                }
            }
            await using (var command = new NpgsqlCommand("SELECT version FROM policies WHERE tailnet = @t", connection, snapshot))
            {
                command.Parameters.AddWithValue("t", tailnet);
                var version = await command.ExecuteScalarAsync();
                return new StoredState(version is long v ? (ulong)v : 0, nodes, uses, byKey);
            }
        }
    }
}
