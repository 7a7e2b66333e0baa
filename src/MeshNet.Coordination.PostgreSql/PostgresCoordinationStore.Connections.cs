using System.Data;
using System.Net.Sockets;
using Npgsql;

namespace MeshNet.Coordination.PostgreSql;

public sealed partial class PostgresCoordinationStore
{
    /// <summary>SQLSTATE of a session ended by <c>idle_in_transaction_session_timeout</c> (PostgreSQL 9.6+).</summary>
    private const string IdleInTransactionSessionTimeout = "25P03";

    /// <summary>Whether an operation may run again on a new connection when its connection broke.</summary>
    private enum Retry
    {
        /// <summary>Never: a single statement whose answer says whether this call changed something (a compare-and-set).</summary>
        Never,

        /// <summary>
        /// Once: a read, an idempotent statement, or a transaction (which commits nothing unless
        /// its <c>COMMIT</c> was sent; a failure from then on is never retried: its outcome is unknown).
        /// </summary>
        Once,
    }

    /// <summary>One attempt of an operation: records when its <c>COMMIT</c> was sent.</summary>
    private sealed class Attempt
    {
        public bool CommitSent { get; set; }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a connection of <paramref name="source"/> (default: the
    /// main pool). When the connection turns out broken (the database restarted or failed over,
    /// the network dropped it, the session was ended), the pool is cleared so that the other
    /// connections it held from before are not tried one by one, and the work runs once more
    /// on a new connection when <paramref name="retry"/> allows it and no <c>COMMIT</c> was sent.
    /// A failure to open a connection, a timeout and a cancellation are never retried.
    /// </summary>
    private async Task<T> RunAsync<T>(Retry retry, Func<NpgsqlConnection, Attempt, Task<T>> work, CancellationToken cancellationToken,
        NpgsqlDataSource? source = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        source ??= _dataSource;
        for (int attempt = 1; ; attempt++)
        {
            var connection = await source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            var state = new Attempt();
            try
            {
                return await work(connection, state).ConfigureAwait(false);
            }
            catch (Exception exception) when (ConnectionBroke(exception))
            {
                source.Clear();
                if (retry == Retry.Never || state.CommitSent || attempt > 1 || cancellationToken.IsCancellationRequested)
                {
                    throw;
                }
            }
            finally
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Runs <paramref name="work"/> as <see cref="RunAsync{T}"/> does.</summary>
    private Task RunAsync(Retry retry, Func<NpgsqlConnection, Attempt, Task> work, CancellationToken cancellationToken) =>
        RunAsync(retry, async (connection, attempt) =>
        {
            await work(connection, attempt).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    /// <summary>
    /// True when <paramref name="exception"/> says the connection is gone: a broken socket, or the
    /// server ending the session (shutdown, crash, idle-in-transaction timeout). Not a timeout.
    /// </summary>
    private static bool ConnectionBroke(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown
            or IdleInTransactionSessionTimeout,
        NpgsqlException npgsql => npgsql.InnerException is IOException or SocketException,
        _ => false,
    };

    /// <summary>A READ COMMITTED transaction, whatever the database's default isolation.</summary>
    private static async Task<NpgsqlTransaction> BeginAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);

    /// <summary>Commits, noting first that the outcome is unknown from now on if the connection breaks.</summary>
    private static async Task CommitAsync(NpgsqlTransaction transaction, Attempt attempt, CancellationToken cancellationToken)
    {
        attempt.CommitSent = true;
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter(name, value ?? DBNull.Value));
        }
        return command;
    }

    private static async Task<int> ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return value is DBNull ? null : value;
    }

    /// <summary>One statement that reads (or idempotently writes) rows, on the main pool, retried once on a broken connection.</summary>
    private Task<IReadOnlyList<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) =>
        RunAsync(Retry.Once, (connection, _) => QueryAsync(connection, null, sql, read, cancellationToken, parameters), cancellationToken);

    /// <summary>One idempotent statement on the main pool, retried once on a broken connection; the rows it affected.</summary>
    private Task<int> ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        ExecuteAsync(Retry.Once, sql, cancellationToken, parameters);

    /// <summary>One statement on the main pool; the rows it affected.</summary>
    private Task<int> ExecuteAsync(Retry retry, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        RunAsync(retry, (connection, _) => ExecuteAsync(connection, null, sql, cancellationToken, parameters), cancellationToken);

    private static async Task<IReadOnlyList<T>> QueryAsync<T>(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql,
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
}
