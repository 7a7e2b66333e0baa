using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using MeshNet;
using MeshNet.Userspace.Crypto;
using Microsoft.Data.Sqlite;

namespace CustomStores;

/// <summary>
/// An <see cref="IMeshStateStore"/> in a row of <see cref="SqliteNodeDatabase"/>: the node's
/// identity (private key as a BLOB, registration, listen port) in row <c>name</c>.
/// </summary>
/// <remarks>
/// Contract of <see cref="IMeshStateStore"/>, as this store keeps it: load returns a new
/// instance the caller owns, or null when nothing was saved; save replaces what was saved,
/// atomically (one upsert in a transaction) and copies what it keeps; failures are
/// <see cref="MeshException"/>s with <see cref="MeshErrorCode.StateStoreFailed"/>; the private
/// key never appears in a message or a log, and every buffer that held it is zeroed.
/// </remarks>
internal sealed class SqliteStateStore(SqliteNodeDatabase database, string name) : IMeshStateStore
{
    public async ValueTask<MeshNodeIdentity?> LoadAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await database.ConnectAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = """
                SELECT private_key, node_id, tailnet, addresses, control_url, listen_port
                FROM nodes WHERE name = $name AND private_key IS NOT NULL
                """;
            command.Parameters.AddWithValue("$name", name);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null; // a new node
            }
            var secret = (byte[])reader.GetValue(0);
            try
            {
                if (secret.Length != WireGuardPrivateKey.Size)
                {
                    throw new MeshException(MeshErrorCode.StateStoreFailed, $"The private key of node '{name}' in {database.Path} is not {WireGuardPrivateKey.Size} bytes.");
                }
                return new MeshNodeIdentity(WireGuardPrivateKey.FromBytes(secret))
                {
                    NodeId = reader.IsDBNull(1) ? null : (ulong)reader.GetInt64(1),
                    Tailnet = reader.IsDBNull(2) ? null : reader.GetString(2),
                    Addresses = reader.IsDBNull(3) ? [] : [.. reader.GetString(3).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(IPAddress.Parse)],
                    ControlUrl = reader.IsDBNull(4) ? null : new Uri(reader.GetString(4)),
                    ListenPort = reader.GetInt32(5),
                };
            }
            finally
            {
                CryptographicOperations.ZeroMemory(secret);
            }
        }
        catch (Exception e) when (e is SqliteException or FormatException or UriFormatException)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The identity of node '{name}' cannot be read from {database.Path}: {e.Message}", e);
        }
    }

    public async ValueTask SaveAsync(MeshNodeIdentity identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var secret = new byte[WireGuardPrivateKey.Size];
        try
        {
            identity.PrivateKey.ExportSecret(secret);
            await using var connection = await database.ConnectAsync(cancellationToken);
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            // One upsert: the identity columns only, so that the netmap columns of the row stay.
            command.CommandText = """
                INSERT INTO nodes (name, private_key, node_id, tailnet, addresses, control_url, listen_port, updated)
                VALUES ($name, $key, $nodeId, $tailnet, $addresses, $controlUrl, $listenPort, $updated)
                ON CONFLICT (name) DO UPDATE SET
                    private_key = excluded.private_key, node_id = excluded.node_id, tailnet = excluded.tailnet,
                    addresses = excluded.addresses, control_url = excluded.control_url,
                    listen_port = excluded.listen_port, updated = excluded.updated
                """;
            command.Parameters.AddWithValue("$name", name);
            command.Parameters.Add("$key", SqliteType.Blob).Value = secret;
            command.Parameters.AddWithValue("$nodeId", identity.NodeId is { } id ? (long)id : DBNull.Value);
            command.Parameters.AddWithValue("$tailnet", (object?)identity.Tailnet ?? DBNull.Value);
            command.Parameters.AddWithValue("$addresses", string.Join(' ', identity.Addresses));
            command.Parameters.AddWithValue("$controlUrl", (object?)identity.ControlUrl?.AbsoluteUri ?? DBNull.Value);
            command.Parameters.AddWithValue("$listenPort", identity.ListenPort);
            command.Parameters.AddWithValue("$updated", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            await command.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (SqliteException e)
        {
            throw new MeshException(MeshErrorCode.StateStoreFailed, $"The identity of node '{name}' cannot be saved to {database.Path}: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <summary>The database and the row; never the key.</summary>
    public override string ToString() => $"SqliteStateStore({database.Path}, {name})";
}
