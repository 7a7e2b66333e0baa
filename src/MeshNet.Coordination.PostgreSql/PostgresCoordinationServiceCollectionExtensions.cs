using MeshNet.Coordination.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.Coordination.PostgreSql;

/// <summary>Registers the PostgreSQL store of the coordination service.</summary>
public static class PostgresCoordinationServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="PostgresCoordinationStore"/> (a singleton, disposed with the
    /// container) as both the <see cref="ICoordinationStore"/> and the
    /// <see cref="ICoordinationLeaseStore"/>. Call it <b>before</b>
    /// <c>AddMeshNetCoordination</c>, which uses a registered store instead of SQLite (and then
    /// needs <c>CoordinationOptions.ServerId</c>).
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="connectionString">The Npgsql connection string of the shared database.</param>
    /// <param name="configure">Sets the store's options (session timeouts, renewal pool); validated here.</param>
    /// <returns><paramref name="services"/>.</returns>
    /// <exception cref="ArgumentException">The connection string or an option is invalid.</exception>
    /// <exception cref="InvalidOperationException">A coordination store is already registered (called twice, or after <c>AddMeshNetCoordination</c>).</exception>
    public static IServiceCollection AddMeshNetCoordinationPostgreSql(this IServiceCollection services, string connectionString,
        Action<PostgresStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (services.Any(descriptor => descriptor.ServiceType == typeof(ICoordinationStore) || descriptor.ServiceType == typeof(ICoordinationLeaseStore)))
        {
            throw new InvalidOperationException(
                "A coordination store is already registered: call AddMeshNetCoordinationPostgreSql once, before AddMeshNetCoordination.");
        }
        var options = new PostgresStoreOptions();
        configure?.Invoke(options);
        // Fails now, not at first resolution, on a malformed connection string or option.
        PostgresCoordinationStore.PrepareConnectionString(connectionString, options);
        services.AddSingleton(_ => new PostgresCoordinationStore(connectionString, options));
        services.AddSingleton<ICoordinationStore>(provider => provider.GetRequiredService<PostgresCoordinationStore>());
        services.AddSingleton<ICoordinationLeaseStore>(provider => provider.GetRequiredService<PostgresCoordinationStore>());
        return services;
    }
}
