using System.Globalization;
using MeshNet.Control.V1;
using MeshNet.TestSupport;
using Npgsql;

namespace MeshNet.Bench.Failover;

/// <summary>
/// One run: a PostgreSQL cluster, the servers, the nodes; then the reference, the planned
/// migrations, the quiet renewal window and the kills, in that order (kills last: they are the
/// only phase that leaves servers restarted).
/// </summary>
internal static class FailoverScenario
{
    private static readonly TimeSpan Settle = TimeSpan.FromMinutes(2);

    public static async Task<FailoverReport> RunAsync(FailoverOptions options, Action<string> progress, CancellationToken cancellationToken)
    {
        var defaults = new MeshNet.Coordination.CoordinationOptions();
        var ttl = options.Ttl ?? defaults.LeaseTtl;
        var tuning = new Dictionary<string, string>
        {
            ["LeaseTtl"] = CoordinatorProcess.Duration(ttl),
            ["LeaseRenewInterval"] = CoordinatorProcess.Duration(options.Ttl is null ? defaults.LeaseRenewInterval : ttl / 5),
            ["LeaseSafetyMargin"] = CoordinatorProcess.Duration(options.Ttl is null ? defaults.LeaseSafetyMargin : ttl / 10),
            ["LeaseClaimInterval"] = CoordinatorProcess.Duration(defaults.LeaseClaimInterval),
            ["RebalanceInterval"] = CoordinatorProcess.Duration(TimeSpan.Zero),
        };
        var report = new FailoverReport { Ttl = ttl };
        progress("starting PostgreSQL and the servers ...");
        await using var cluster = await PostgresCluster.StartAsync(cancellationToken);
        await using var deployment = await ShardedDeployment.StartAsync(cluster, options.Servers, tuning);
        var fleets = new Dictionary<string, NodeFleet>(StringComparer.Ordinal);
        try
        {
            var started = DateTime.UtcNow;
            var names = Enumerable.Range(0, options.Tailnets).Select(i => $"b{i}").ToList();
            for (int i = 0; i < names.Count; i++)
            {
                var key = await deployment.CreateTailnetAsync(names[i]);
                var home = deployment.Servers[i % deployment.Servers.Count];
                if ((await deployment.OwnerAsync(names[i])).Server != home)
                {
                    await MoveAsync(deployment, names[i], home.ServerId);
                }
                int size = options.Nodes / options.Tailnets + (i < options.Nodes % options.Tailnets ? 1 : 0);
                fleets[names[i]] = await NodeFleet.JoinAsync(deployment, key, size, $"{names[i]}-n");
                progress($"  {names[i]}: {size} nodes on {home.ServerId}");
            }
            foreach (var fleet in fleets.Values)
            {
                await fleet.WaitAllAsync(node => node.PeerCount == fleet.Nodes.Count - 1, "every peer known", Settle);
            }
            report.JoinSeconds = (DateTime.UtcNow - started).TotalSeconds;
            report.JoinedAt = DateTimeOffset.UtcNow;

            progress("reference: policy saves ...");
            for (int i = 0; i < options.Moves; i++)
            {
                report.Reference.Add(await PolicySaveAsync(deployment, names[i % names.Count], fleets[names[i % names.Count]], i));
            }

            progress("planned migrations ...");
            for (int i = 0; i < options.Moves; i++)
            {
                var name = names[i % names.Count];
                var owner = await deployment.OwnerAsync(name);
                var target = deployment.Servers[(deployment.Servers.IndexOf(owner.Server) + 1) % deployment.Servers.Count];
                var fleet = fleets[name];
                var before = fleet.Nodes.ToDictionary(node => node, node => node.Gaps.Count);
                var moved = await MoveAsync(deployment, name, target.ServerId);
                await fleet.WaitAllAsync(node => node.Epoch >= moved.Epoch && !node.InGap, $"{name} resumed on {target.ServerId}", Settle);
                report.MoveFrozen.Add(moved.Frozen.ToTimeSpan().TotalMilliseconds);
                report.MoveGaps.AddRange(fleet.Nodes.SelectMany(node => node.Gaps.Skip(before[node])).Select(gap => gap.TotalMilliseconds));
            }

            progress("lease renewals on PostgreSQL (20 s of quiet) ...");
            report.Renewals = await MeasureRenewalsAsync(deployment.ConnectionString, TimeSpan.FromSeconds(20), cancellationToken);

            var homes = names.Select((name, i) => (name, deployment.Servers[i % deployment.Servers.Count].ServerId))
                .ToDictionary(pair => pair.name, pair => pair.ServerId, StringComparer.Ordinal);
            for (int i = 0; i < options.Kills; i++)
            {
                progress($"kill {i + 1} of {options.Kills} ...");
                report.Kills.Add(await KillBusiestAsync(deployment, fleets, ttl));
                // Back to the spread over every server before the next fault: the restarted server
                // takes its tailnets back (planned moves, not measured).
                foreach (var (name, home) in homes)
                {
                    if ((await deployment.OwnerAsync(name)).Server.ServerId != home)
                    {
                        var moved = await MoveAsync(deployment, name, home);
                        await fleets[name].WaitAllAsync(node => node.Epoch >= moved.Epoch && !node.InGap, $"{name} back on {home}", Settle);
                    }
                }
            }
            // Every incident closed before they are read, or as closed as it gets: a part measured
            // by a server killed later stays open.
            var deadline = DateTime.UtcNow.AddSeconds(40);
            while (DateTime.UtcNow < deadline &&
                !(await deployment.IncidentsAsync()).All(incident => incident.TimeToMitigate is not null || incident.Tailnets.All(part => part.Closed)))
            {
                await Task.Delay(500, cancellationToken);
            }
            report.Incidents.AddRange((await deployment.IncidentsAsync()).Where(incident => incident.Started.ToDateTimeOffset() >= report.JoinedAt).Reverse());
            return report;
        }
        finally
        {
            await Task.WhenAll(fleets.Values.Select(fleet => fleet.DisposeAsync().AsTask()));
            // The servers' logs, for a look at what happened.
            var logs = Path.Combine(Path.GetTempPath(), $"meshnet-failover-{Environment.ProcessId}");
            Directory.CreateDirectory(logs);
            foreach (var server in deployment.Servers)
            {
                await File.WriteAllTextAsync(Path.Combine(logs, $"{server.ServerId}.log"), server.Output, CancellationToken.None);
            }
            report.LogDirectory = logs;
        }
    }

    private static Task<MoveTailnetResponse> MoveAsync(ShardedDeployment deployment, string tailnet, string target) =>
        deployment.CallAsync(admin => admin.MoveTailnetAsync(new MoveTailnetRequest { Tailnet = tailnet, TargetServer = target },
            ShardedDeployment.AdminHeaders(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync);

    /// <summary>Saves a policy (allow-all, made distinct by a comment) and times it to the last node that applied it.</summary>
    private static async Task<double> PolicySaveAsync(ShardedDeployment deployment, string tailnet, NodeFleet fleet, int round)
    {
        var savedAt = DateTimeOffset.UtcNow;
        var saved = await deployment.CallAsync(admin => admin.SetPolicyAsync(new SetPolicyRequest
        {
            Tailnet = tailnet,
            Policy = $$"""{ /* reference {{round}} */ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }""",
        }, ShardedDeployment.AdminHeaders($"reference-{round}")).ResponseAsync);
        await fleet.WaitAllAsync(node => node.PolicyVersion >= saved.Version, $"policy {saved.Version} applied", Settle);
        return fleet.Nodes.Max(node => (node.Events.First(e => e.PolicyVersion >= saved.Version).At - savedAt).TotalMilliseconds);
    }

    /// <summary>Kills the server serving the most tailnets, times its nodes' return, and starts it again (empty).</summary>
    private static async Task<KillResult> KillBusiestAsync(ShardedDeployment deployment, Dictionary<string, NodeFleet> fleets, TimeSpan ttl)
    {
        var leases = (await deployment.CallAsync(admin => admin.ListLeasesAsync(new ListLeasesRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync)).Leases;
        var victimId = leases.Where(lease => lease.Owner.Length > 0).GroupBy(lease => lease.Owner).MaxBy(group => group.Count())!.Key;
        var affected = leases.Where(lease => lease.Owner == victimId).ToDictionary(lease => lease.Tailnet, lease => lease.Epoch, StringComparer.Ordinal);
        var victim = deployment.Server(victimId);
        // A point of its renewal cycle that is not always the same.
        await Task.Delay(TimeSpan.FromMilliseconds(1_500 + Random.Shared.Next(1_000)));
        var killedAt = DateTimeOffset.UtcNow;
        await victim.KillAsync();
        var resumed = new List<double>();
        var lastTries = new List<double>();
        foreach (var (tailnet, epoch) in affected)
        {
            var fleet = fleets[tailnet];
            await fleet.WaitAllAsync(node => node.Epoch > epoch && !node.InGap, $"{tailnet} resumed after {victimId} died", ttl + Settle);
            foreach (var node in fleet.Nodes)
            {
                var back = node.Events.First(e => e.Epoch > epoch).At;
                resumed.Add((back - killedAt).TotalMilliseconds);
                var lastTry = node.Failures.Where(failure => failure.At <= back).Select(failure => failure.At).DefaultIfEmpty(killedAt).Max();
                lastTries.Add((back - lastTry).TotalMilliseconds);
            }
        }
        await victim.RestartAsync();
        await WaitAsync(async () =>
        {
            var servers = await deployment.CallAsync(admin => admin.ListServersAsync(new ListServersRequest(), ShardedDeployment.AdminHeaders()).ResponseAsync);
            return servers.Servers.Single(server => server.Id == victimId).Live;
        }, TimeSpan.FromMinutes(1));
        return new KillResult(victimId, affected.Count, resumed.Count, resumed.Max(), resumed, lastTries);
    }

    /// <summary>PostgreSQL's counters over <paramref name="window"/>: lease rows updated, heartbeats, commits, WAL written.</summary>
    private static async Task<RenewalLoad> MeasureRenewalsAsync(string connectionString, TimeSpan window, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        async Task<(double Leases, double Servers, double Commits, double Wal, DateTime At)> SampleAsync()
        {
            // Counters a backend has not flushed yet are made visible to this snapshot.
            await using var command = new NpgsqlCommand(
                """
                SELECT (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'tailnet_leases'),
                       (SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'coordination_servers'),
                       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                       (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8;
                """, connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetDouble(3), DateTime.UtcNow);
        }
        var first = await SampleAsync();
        await Task.Delay(window, cancellationToken);
        var last = await SampleAsync();
        double seconds = (last.At - first.At).TotalSeconds;
        return new RenewalLoad(seconds, (last.Leases - first.Leases) / seconds, (last.Servers - first.Servers) / seconds,
            (last.Commits - first.Commits) / seconds, (last.Wal - first.Wal) / seconds);
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture, $"a condition did not hold within {timeout.TotalSeconds:0} s"));
            }
            await Task.Delay(100);
        }
    }
}
