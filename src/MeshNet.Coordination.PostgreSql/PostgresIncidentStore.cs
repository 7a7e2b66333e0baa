using MeshNet.Coordination.Storage;
using Npgsql;
using static MeshNet.Coordination.PostgreSql.PostgresCommands;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The incident record on PostgreSQL: <c>coordination_incidents</c> (one header per incident) and
/// <c>coordination_incident_tailnets</c> (each tailnet's part, replaced as it is measured). The
/// incident half of <see cref="ICoordinationLeaseStore"/> for <see cref="PostgresCoordinationStore"/>.
/// </summary>
/// <remarks>
/// Thread-safe and stateless but for the shared <see cref="PostgresConnections"/>, which it does
/// not own; after they are disposed every call throws <see cref="ObjectDisposedException"/>. Every
/// statement is idempotent (retried once on a broken connection).
/// </remarks>
/// <param name="connections">The store's connections (not owned).</param>
internal sealed class PostgresIncidentStore(PostgresConnections connections)
{
    /// <inheritdoc cref="PostgresCoordinationStore.OpenIncidentAsync"/>
    public Task OpenIncidentAsync(StoredIncident incident, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(incident);
        return connections.ExecuteAsync(
            """
            INSERT INTO coordination_incidents (id, cause, subject, started_at, tailnets_total, nodes_total)
            VALUES (@id, @c, @s, @at, @t, @n) ON CONFLICT (id) DO NOTHING;
            """, cancellationToken, ("@id", incident.Id), ("@c", incident.Cause), ("@s", incident.Subject), ("@at", Stamp(incident.StartedAt)),
            ("@t", incident.TailnetsTotal), ("@n", incident.NodesTotal));
    }

    /// <inheritdoc cref="PostgresCoordinationStore.SaveIncidentTailnetAsync"/>
    public Task SaveIncidentTailnetAsync(StoredIncidentTailnet part, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(part);
        return connections.ExecuteAsync(
            """
            INSERT INTO coordination_incident_tailnets (incident_id, tailnet, server, epoch, detect_ms, nodes_affected, nodes_resumed,
                gap_node_seconds, median_gap_ms, max_gap_ms, mitigate_ms, refused_writes, severity, closed)
            VALUES (@id, @t, @s, @e, @d, @a, @r, @g, @med, @max, @m::bigint, @w, @sev, @c)
            ON CONFLICT (incident_id, tailnet) DO UPDATE SET server = excluded.server, epoch = excluded.epoch, detect_ms = excluded.detect_ms,
                nodes_affected = excluded.nodes_affected, nodes_resumed = excluded.nodes_resumed, gap_node_seconds = excluded.gap_node_seconds,
                median_gap_ms = excluded.median_gap_ms, max_gap_ms = excluded.max_gap_ms, mitigate_ms = excluded.mitigate_ms,
                refused_writes = excluded.refused_writes, severity = excluded.severity, closed = excluded.closed;
            """, cancellationToken, ("@id", part.IncidentId), ("@t", part.Tailnet), ("@s", part.Server), ("@e", (long)part.Epoch),
            ("@d", (long)part.TimeToDetect.TotalMilliseconds), ("@a", part.NodesAffected), ("@r", part.NodesResumed), ("@g", part.GapNodeSeconds),
            ("@med", (long)part.MedianGap.TotalMilliseconds), ("@max", (long)part.MaxGap.TotalMilliseconds),
            ("@m", part.TimeToMitigate is { } mitigate ? (long)mitigate.TotalMilliseconds : null), ("@w", part.RefusedWrites), ("@sev", part.Severity),
            ("@c", part.Closed));
    }

    /// <inheritdoc cref="PostgresCoordinationStore.ListIncidentsAsync"/>
    public Task<IReadOnlyList<StoredIncident>> ListIncidentsAsync(int limit, CancellationToken cancellationToken) =>
        connections.RunAsync(Retry.Once, (connection, _) => ListIncidentsAsync(connection, limit, cancellationToken), cancellationToken);

    private static async Task<IReadOnlyList<StoredIncident>> ListIncidentsAsync(NpgsqlConnection connection, int limit, CancellationToken cancellationToken)
    {
        var incidents = await QueryAsync(connection, null,
            "SELECT id, cause, subject, started_at, tailnets_total, nodes_total FROM coordination_incidents ORDER BY started_at DESC, id LIMIT @l;",
            reader => new StoredIncident(reader.GetString(0), reader.GetString(1), reader.GetString(2), ReadStamp(reader, 3), reader.GetInt64(4),
                reader.GetInt64(5)), cancellationToken, ("@l", limit)).ConfigureAwait(false);
        if (incidents.Count == 0)
        {
            return incidents;
        }
        var parts = await QueryAsync(connection, null,
            """
            SELECT incident_id, tailnet, server, epoch, detect_ms, nodes_affected, nodes_resumed, gap_node_seconds, median_gap_ms, max_gap_ms,
                mitigate_ms, refused_writes, severity, closed
            FROM coordination_incident_tailnets WHERE incident_id = ANY(@ids) ORDER BY incident_id, tailnet;
            """, ReadIncidentTailnet, cancellationToken, ("@ids", incidents.Select(incident => incident.Id).ToArray())).ConfigureAwait(false);
        var byIncident = parts.ToLookup(part => part.IncidentId, StringComparer.Ordinal);
        return incidents.Select(incident => incident with { Tailnets = byIncident[incident.Id].ToList() }).ToList();
    }

    private static StoredIncidentTailnet ReadIncidentTailnet(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetString(2), (ulong)reader.GetInt64(3), TimeSpan.FromMilliseconds(reader.GetInt64(4)),
            reader.GetInt32(5), reader.GetInt32(6), reader.GetDouble(7), TimeSpan.FromMilliseconds(reader.GetInt64(8)),
            TimeSpan.FromMilliseconds(reader.GetInt64(9)), reader.IsDBNull(10) ? null : TimeSpan.FromMilliseconds(reader.GetInt64(10)),
            reader.GetInt32(11), reader.GetString(12), reader.GetBoolean(13));
}
