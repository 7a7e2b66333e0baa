using System.Net.Sockets;
using Npgsql;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>
/// The connections of a <see cref="PostgresCoordinationStore"/>: its main pool and the separate
/// small pool of lease renewals, each operation run on a pooled connection of one of them, and
/// what a broken connection means (the pool cleared, the operation run once more when nothing
/// can have been written). Every part of the store receives the one instance.
/// </summary>
/// <remarks>
/// <para>Thread-safe: the data sources are, and each operation has a connection of its own for
/// its duration. The disposed flag is the only mutable state (interlocked).</para>
/// <para>Ownership: disposes the data sources it created (<see cref="Create"/>), never ones it
/// was given (<see cref="Borrow"/>). After <see cref="DisposeAsync"/> or <see cref="Dispose"/>
/// every operation started throws <see cref="ObjectDisposedException"/> naming
/// <see cref="PostgresCoordinationStore"/>; disposing does not wait for operations already
/// running.</para>
/// </remarks>
internal sealed class PostgresConnections : IAsyncDisposable, IDisposable
{
    /// <summary>SQLSTATE of a session ended by <c>idle_in_transaction_session_timeout</c> (PostgreSQL 9.6+).</summary>
    private const string IdleInTransactionSessionTimeout = "25P03";

    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource _renewalSource;
    private readonly bool _ownsDataSources;
    private int _disposed;

    private PostgresConnections(NpgsqlDataSource dataSource, NpgsqlDataSource renewalSource, bool ownsDataSources)
    {
        _dataSource = dataSource;
        _renewalSource = renewalSource;
        _ownsDataSources = ownsDataSources;
    }

    /// <summary>
    /// Creates (and owns) the two pools on the database of <paramref name="connectionString"/>,
    /// already carrying the store's session settings (<see cref="PostgresCoordinationStore.PrepareConnectionString"/>).
    /// Nothing is opened yet.
    /// </summary>
    /// <param name="connectionString">The prepared connection string of the main pool; its application name defaults to <c>meshnet-coordination</c>.</param>
    /// <param name="renewalPoolSize">The renewal pool's maximum size.</param>
    public static PostgresConnections Create(string connectionString, int renewalPoolSize)
    {
        var main = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrEmpty(main.ApplicationName))
        {
            main.ApplicationName = "meshnet-coordination";
        }
        var renewal = new NpgsqlConnectionStringBuilder(main.ConnectionString)
        {
            MaxPoolSize = renewalPoolSize,
            MinPoolSize = 0,
            ApplicationName = main.ApplicationName + " renewals",
        };
        var dataSource = NpgsqlDataSource.Create(main);
        try
        {
            return new PostgresConnections(dataSource, NpgsqlDataSource.Create(renewal), ownsDataSources: true);
        }
        catch
        {
            dataSource.Dispose();
            throw;
        }
    }

    /// <summary>Uses data sources the caller owns (left open on dispose); without a renewal pool, renewals run on the main one.</summary>
    /// <param name="dataSource">The main pool.</param>
    /// <param name="renewalDataSource">The renewal pool, or null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="dataSource"/> is null.</exception>
    public static PostgresConnections Borrow(NpgsqlDataSource dataSource, NpgsqlDataSource? renewalDataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return new PostgresConnections(dataSource, renewalDataSource ?? dataSource, ownsDataSources: false);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a connection of the main pool. When the connection turns
    /// out broken (the database restarted or failed over, the network dropped it, the session was
    /// ended), the pool is cleared so that the other connections it held from before are not tried
    /// one by one, and the work runs once more on a new connection when <paramref name="retry"/>
    /// allows it and no <c>COMMIT</c> was sent. A failure to open a connection, a timeout and a
    /// cancellation are never retried. The connection is disposed (returned to its pool) when the
    /// work ends; the work must not keep it.
    /// </summary>
    public Task<T> RunAsync<T>(Retry retry, Func<NpgsqlConnection, Attempt, Task<T>> work, CancellationToken cancellationToken) =>
        RunOnAsync(_dataSource, retry, work, cancellationToken);

    /// <summary>Runs <paramref name="work"/> as <see cref="RunAsync{T}"/> does, on a connection of the renewal pool.</summary>
    public Task<T> RunRenewalAsync<T>(Retry retry, Func<NpgsqlConnection, Attempt, Task<T>> work, CancellationToken cancellationToken) =>
        RunOnAsync(_renewalSource, retry, work, cancellationToken);

    /// <summary>One statement that reads (or idempotently writes) rows, on the main pool, retried once on a broken connection.</summary>
    public Task<IReadOnlyList<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken,
        params (string Name, object? Value)[] parameters) =>
        RunAsync(Retry.Once, (connection, _) => PostgresCommands.QueryAsync(connection, null, sql, read, cancellationToken, parameters), cancellationToken);

    /// <summary>One idempotent statement on the main pool, retried once on a broken connection; the rows it affected.</summary>
    public Task<int> ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        ExecuteAsync(Retry.Once, sql, cancellationToken, parameters);

    /// <summary>One statement on the main pool; the rows it affected.</summary>
    public Task<int> ExecuteAsync(Retry retry, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        RunAsync(retry, (connection, _) => PostgresCommands.ExecuteAsync(connection, null, sql, cancellationToken, parameters), cancellationToken);

    /// <summary>
    /// True when <paramref name="exception"/> says the connection is gone: a broken socket, or the
    /// server ending the session (shutdown, crash, idle-in-transaction timeout). Not a timeout.
    /// </summary>
    public static bool ConnectionBroke(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.SqlState is PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown
            or IdleInTransactionSessionTimeout,
        NpgsqlException npgsql => npgsql.InnerException is IOException or SocketException,
        _ => false,
    };

    /// <summary>Closes the data sources it created (their pooled connections); borrowed ones stay open. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !_ownsDataSources)
        {
            return;
        }
        await _renewalSource.DisposeAsync().ConfigureAwait(false);
        await _dataSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Closes the data sources it created (their pooled connections); borrowed ones stay open. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0 || !_ownsDataSources)
        {
            return;
        }
        _renewalSource.Dispose();
        _dataSource.Dispose();
    }

    private async Task<T> RunOnAsync<T>(NpgsqlDataSource source, Retry retry, Func<NpgsqlConnection, Attempt, Task<T>> work,
        CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, typeof(PostgresCoordinationStore));
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
}
