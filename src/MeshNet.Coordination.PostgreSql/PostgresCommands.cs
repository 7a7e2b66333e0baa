using System.Data;
using Npgsql;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The statements the parts of <see cref="PostgresCoordinationStore"/> run on a connection they
/// were handed (by <see cref="PostgresConnections.RunAsync{T}"/>): READ COMMITTED transactions,
/// parameterised statements, and instants as they are stored and read.
/// </summary>
/// <remarks>
/// Stateless, so thread-safe; a connection (and its transaction) is used by one caller at a time,
/// as Npgsql requires. Nothing here opens, retries or disposes a connection: the caller owns it.
/// </remarks>
internal static class PostgresCommands
{
    /// <summary>The database's clock at millisecond precision (as every stored instant): the time of the transaction's start.</summary>
    public const string DbNow = "date_trunc('milliseconds', now())";

    /// <summary>A READ COMMITTED transaction, whatever the database's default isolation.</summary>
    public static async Task<NpgsqlTransaction> BeginAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);

    /// <summary>Commits, noting first that the outcome is unknown from now on if the connection breaks.</summary>
    public static async Task CommitAsync(NpgsqlTransaction transaction, Attempt attempt, CancellationToken cancellationToken)
    {
        attempt.CommitSent = true;
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs one statement; the rows it affected.</summary>
    public static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs one statement; the first column of its first row, null for none or SQL <c>NULL</c>.</summary>
    public static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is DBNull ? null : value;
    }

    /// <summary>Runs one statement; every row it returned, each read by <paramref name="read"/>.</summary>
    public static async Task<IReadOnlyList<T>> QueryAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql,
        Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<T>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            list.Add(read(reader));
        }
        return list;
    }

    /// <summary>A unique violation of the named constraint (a concurrent insert took the value first).</summary>
    public static bool IsUniqueViolation(PostgresException exception, string constraint) =>
        exception.SqlState == PostgresErrorCodes.UniqueViolation && exception.ConstraintName == constraint;

    /// <summary>An instant as stored: UTC (what <c>timestamptz</c> takes), truncated to the millisecond as the SQLite store keeps it.</summary>
    public static DateTimeOffset Stamp(DateTimeOffset value) => DateTimeOffset.FromUnixTimeMilliseconds(value.ToUnixTimeMilliseconds());

    /// <summary>A stored instant.</summary>
    public static DateTimeOffset ReadStamp(NpgsqlDataReader reader, int ordinal) => reader.GetFieldValue<DateTimeOffset>(ordinal);

    /// <summary>A stored instant, or null for SQL <c>NULL</c>.</summary>
    public static DateTimeOffset? ReadStampOrNull(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);

    /// <summary>A text column, or null for SQL <c>NULL</c>.</summary>
    public static string? ReadStringOrNull(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter(name, value ?? DBNull.Value));
        }
        return command;
    }
}
