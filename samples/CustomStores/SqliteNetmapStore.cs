using System.Globalization;
using MeshNet;
using Microsoft.Data.Sqlite;

namespace CustomStores;

/// <summary>
/// An <see cref="IMeshNetmapStore"/> in a row of <see cref="SqliteNodeDatabase"/>: the bytes of
/// <see cref="MeshCachedNetmap.Serialize"/>, exactly as they are, in column <c>netmap</c> of
/// row <c>name</c>.
/// </summary>
/// <remarks>
/// Contract of <see cref="IMeshNetmapStore"/>, as this store keeps it: save replaces the netmap
/// atomically (one upsert in a transaction); load returns null when there is none, and also when
/// <see cref="MeshCachedNetmap.Deserialize"/> refuses the bytes (truncated, modified, another
/// node's, an unknown version): the bad bytes are then moved to <c>netmap_set_aside</c> with the
/// reason, in one transaction, and a warning is written, so the node starts from the
/// coordination service; delete clears the netmap; database failures are
/// <see cref="MeshException"/>s with <see cref="MeshErrorCode.StateStoreFailed"/>.
/// </remarks>
internal sealed class SqliteNetmapStore(SqliteNodeDatabase database, string name, TextWriter warnings) : IMeshNetmapStore
{
    public async ValueTask<MeshCachedNetmap?> LoadAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        try
        {
            await using var connection = await database.ConnectAsync(cancellationToken);
            byte[]? bytes;
            await using (var select = connection.CreateCommand())
            {
                select.CommandText = "SELECT netmap FROM nodes WHERE name = $name";
                select.Parameters.AddWithValue("$name", name);
                bytes = await select.ExecuteScalarAsync(cancellationToken) as byte[];
            }
            if (bytes is null)
            {
                return null;
            }
            try
            {
                return MeshCachedNetmap.Deserialize(bytes, identity);
            }
            catch (InvalidDataException e)
            {
                await SetAsideAsync(connection, e.Message, cancellationToken);
                warnings.WriteLine($"warning: the netmap of node '{name}' in {database.Path} is unusable ({e.Message}); set aside, starting from the coordination service");
                return null;
            }
        }
        catch (SqliteException e)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap of node '{name}' cannot be read from {database.Path}: {e.Message}", e);
        }
    }

    public async ValueTask SaveAsync(MeshNodeIdentity identity, MeshCachedNetmap netmap, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(netmap);
        var bytes = netmap.Serialize(identity); // keep these bytes: versioned and integrity-protected
        await ExecuteAsync("saved", """
            INSERT INTO nodes (name, netmap, updated) VALUES ($name, $netmap, $updated)
            ON CONFLICT (name) DO UPDATE SET netmap = excluded.netmap, updated = excluded.updated
            """, bytes, cancellationToken);
    }

    public async ValueTask DeleteAsync(CancellationToken cancellationToken = default) =>
        await ExecuteAsync("deleted", "UPDATE nodes SET netmap = NULL, updated = $updated WHERE name = $name", null, cancellationToken);

    private async Task ExecuteAsync(string what, string sql, byte[]? netmap, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await database.ConnectAsync(cancellationToken);
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = sql;
            command.Parameters.AddWithValue("$name", name);
            command.Parameters.AddWithValue("$updated", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            if (netmap is not null)
            {
                command.Parameters.Add("$netmap", SqliteType.Blob).Value = netmap;
            }
            await command.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (SqliteException e)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The netmap of node '{name}' cannot be {what} in {database.Path}: {e.Message}", e);
        }
    }

    private async Task SetAsideAsync(SqliteConnection connection, string reason, CancellationToken cancellationToken)
    {
        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            UPDATE nodes SET netmap_set_aside = netmap, netmap_set_aside_why = $why, netmap = NULL, updated = $updated
            WHERE name = $name
            """;
        command.Parameters.AddWithValue("$name", name);
        command.Parameters.AddWithValue("$why", reason);
        command.Parameters.AddWithValue("$updated", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public override string ToString() => $"SqliteNetmapStore({database.Path}, {name})";
}
