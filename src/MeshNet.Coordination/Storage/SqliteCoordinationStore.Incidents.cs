namespace MeshNet.Coordination.Storage;

public sealed partial class SqliteCoordinationStore
{
    /// <inheritdoc />
    public async Task OpenIncidentAsync(StoredIncident incident, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(incident);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null,
            """
            INSERT OR IGNORE INTO coordination_incidents (id, cause, subject, started_at, tailnets_total, nodes_total)
            VALUES ($id, $c, $s, $at, $t, $n);
            """, cancellationToken, ("$id", incident.Id), ("$c", incident.Cause), ("$s", incident.Subject),
            ("$at", incident.StartedAt.ToUnixTimeMilliseconds()), ("$t", incident.TailnetsTotal), ("$n", incident.NodesTotal)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task SaveIncidentTailnetAsync(StoredIncidentTailnet part, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(part);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, null,
            """
            INSERT OR REPLACE INTO coordination_incident_tailnets (incident_id, tailnet, server, epoch, detect_ms, nodes_affected, nodes_resumed,
                gap_node_seconds, median_gap_ms, max_gap_ms, mitigate_ms, refused_writes, severity, closed)
            VALUES ($id, $t, $s, $e, $d, $a, $r, $g, $med, $max, $m, $w, $sev, $c);
            """, cancellationToken, ("$id", part.IncidentId), ("$t", part.Tailnet), ("$s", part.Server), ("$e", (long)part.Epoch),
            ("$d", (long)part.TimeToDetect.TotalMilliseconds), ("$a", part.NodesAffected), ("$r", part.NodesResumed), ("$g", part.GapNodeSeconds),
            ("$med", (long)part.MedianGap.TotalMilliseconds), ("$max", (long)part.MaxGap.TotalMilliseconds),
            ("$m", part.TimeToMitigate is { } mitigate ? (long)mitigate.TotalMilliseconds : null), ("$w", part.RefusedWrites), ("$sev", part.Severity),
            ("$c", part.Closed)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<StoredIncident>> ListIncidentsAsync(int limit, CancellationToken cancellationToken)
    {
        var incidents = await QueryAsync(
            "SELECT id, cause, subject, started_at, tailnets_total, nodes_total FROM coordination_incidents ORDER BY started_at DESC, id LIMIT $l;",
            reader => new StoredIncident(reader.GetString(0), reader.GetString(1), reader.GetString(2), FromUnix(reader.GetInt64(3)), reader.GetInt64(4),
                reader.GetInt64(5)), cancellationToken, ("$l", limit)).ConfigureAwait(false);
        var result = new List<StoredIncident>(incidents.Count);
        foreach (var incident in incidents)
        {
            var parts = await QueryAsync(
                """
                SELECT incident_id, tailnet, server, epoch, detect_ms, nodes_affected, nodes_resumed, gap_node_seconds, median_gap_ms, max_gap_ms,
                    mitigate_ms, refused_writes, severity, closed
                FROM coordination_incident_tailnets WHERE incident_id = $id ORDER BY tailnet;
                """,
                reader => new StoredIncidentTailnet(reader.GetString(0), reader.GetString(1), reader.GetString(2), (ulong)reader.GetInt64(3),
                    TimeSpan.FromMilliseconds(reader.GetInt64(4)), reader.GetInt32(5), reader.GetInt32(6), reader.GetDouble(7),
                    TimeSpan.FromMilliseconds(reader.GetInt64(8)), TimeSpan.FromMilliseconds(reader.GetInt64(9)),
                    reader.IsDBNull(10) ? null : TimeSpan.FromMilliseconds(reader.GetInt64(10)), reader.GetInt32(11), reader.GetString(12),
                    reader.GetBoolean(13)),
                cancellationToken, ("$id", incident.Id)).ConfigureAwait(false);
            result.Add(incident with { Tailnets = parts });
        }
        return result;
    }
}
