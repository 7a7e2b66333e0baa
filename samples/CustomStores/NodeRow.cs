namespace CustomStores;

/// <summary>What the sample prints about a row of the nodes table (never the key).</summary>
internal sealed record NodeRow(string Name, long? NodeId, int ListenPort, long NetmapBytes)
{
    public static async Task<IReadOnlyList<NodeRow>> ReadAllAsync(SqliteNodeDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.ConnectAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, node_id, listen_port, coalesce(length(netmap), 0) FROM nodes ORDER BY name";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<NodeRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new NodeRow(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetInt32(2), reader.GetInt64(3)));
        }
        return rows;
    }
}
