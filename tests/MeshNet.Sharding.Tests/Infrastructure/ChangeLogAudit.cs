using Npgsql;

namespace MeshNet.Sharding.Tests.Infrastructure;

/// <summary>
/// The deployment's change log read straight from PostgreSQL, and the Jepsen-style invariants of
/// each tailnet's history: revisions contiguous up to the head, no revision twice, no commit under
/// an epoch after a later epoch committed; and lookups of what was acknowledged.
/// </summary>
internal sealed class ChangeLogAudit
{
    private ChangeLogAudit(List<Change> changes, Dictionary<string, (long Head, long Floor)> heads)
    {
        Changes = changes;
        Heads = heads;
    }

    public List<Change> Changes { get; }

    public Dictionary<string, (long Head, long Floor)> Heads { get; }

    public static async Task<ChangeLogAudit> ReadAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        // One snapshot for both reads: writes may still be committing.
        await using var snapshot = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead);
        var changes = new List<Change>();
        await using (var command = new NpgsqlCommand(
            "SELECT tailnet, revision, epoch, kind, node_id, detail, idempotency_key FROM tailnet_changes ORDER BY tailnet, revision", connection, snapshot))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                changes.Add(new Change(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3), reader.GetInt64(4),
                    reader.GetString(5), reader.IsDBNull(6) ? null : reader.GetString(6)));
            }
        }
        var heads = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand("SELECT tailnet, revision, log_floor FROM tailnet_leases", connection, snapshot))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                heads[reader.GetString(0)] = (reader.GetInt64(1), reader.GetInt64(2));
            }
        }
        return new ChangeLogAudit(changes, heads);
    }

    /// <summary>Every broken invariant, empty when the history is sound.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        foreach (var group in Changes.GroupBy(change => change.Tailnet))
        {
            var (head, floor) = Heads[group.Key];
            var revisions = group.Select(change => change.Revision).ToList();
            if (!revisions.SequenceEqual(Enumerable.Range(0, (int)(head - floor)).Select(i => floor + 1 + i)))
            {
                var missing = Enumerable.Range(0, (int)(head - floor)).Select(i => floor + 1 + i).Except(revisions).Take(20);
                problems.Add($"{group.Key}: revisions are not {floor + 1}..{head} (missing {string.Join(",", missing)}; {revisions.Count} rows, last {revisions.LastOrDefault()})");
            }
            long epoch = 0;
            foreach (var change in group)
            {
                if (change.Epoch < epoch)
                {
                    problems.Add($"{group.Key}: revision {change.Revision} committed under epoch {change.Epoch} after epoch {epoch} had committed");
                }
                epoch = Math.Max(epoch, change.Epoch);
            }
        }
        return problems;
    }

    /// <summary>The change written with this idempotency key, or null.</summary>
    public Change? WithKey(string tailnet, string key) => Changes.SingleOrDefault(change => change.Tailnet == tailnet && change.IdempotencyKey == key);

    public sealed record Change(string Tailnet, long Revision, long Epoch, string Kind, long NodeId, string Detail, string? IdempotencyKey);
}
