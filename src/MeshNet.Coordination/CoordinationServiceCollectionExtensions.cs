using MeshNet.Coordination.Auth;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Hosting;
using MeshNet.Coordination.Incidents;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Services;
using MeshNet.Coordination.Sharding;
using MeshNet.Coordination.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination;

/// <summary>Registers the MeshNet coordination service in an ASP.NET Core application.</summary>
public static class CoordinationServiceCollectionExtensions
{
    /// <summary>
    /// Adds the coordination service: gRPC, the Control and Admin services with their
    /// authentication, the store (a <see cref="SqliteCoordinationStore"/> on
    /// <see cref="CoordinationOptions.DatabasePath"/> unless an <see cref="ICoordinationStore"/> is
    /// already registered), the per-tailnet buses, and a hosted service that initializes the
    /// store and the server key at start and runs the maintenance timer. Then call
    /// <see cref="CoordinationEndpointRouteBuilderExtensions.MapMeshNetCoordination"/>.
    /// </summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Sets the options; they are validated here.</param>
    /// <returns><paramref name="services"/>.</returns>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    /// <exception cref="InvalidOperationException">Called twice on the same collection.</exception>
    public static IServiceCollection AddMeshNetCoordination(this IServiceCollection services, Action<CoordinationOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        if (services.Any(descriptor => descriptor.ServiceType == typeof(CoordinationOptions)))
        {
            throw new InvalidOperationException("AddMeshNetCoordination was already called on this service collection.");
        }
        var options = new CoordinationOptions();
        configure(options);
        options.Validate(storeRegistered: services.Any(descriptor => descriptor.ServiceType == typeof(ICoordinationStore)));

        services.AddSingleton(options);
        services.TryAddSingleton(options.TimeProvider ?? TimeProvider.System);
        services.AddLogging();
        if (!services.Any(descriptor => descriptor.ServiceType == typeof(ICoordinationStore)))
        {
            services.AddSingleton<ICoordinationStore>(provider => options.DatabasePath is { Length: > 0 } path
                ? new SqliteCoordinationStore(path, ClockOf(provider, options))
                : SqliteCoordinationStore.FromConnectionString(options.ConnectionString!, ClockOf(provider, options)));
        }
        services.TryAddSingleton(provider => provider.GetRequiredService<ICoordinationStore>() as ICoordinationLeaseStore
            ?? throw new InvalidOperationException("The registered ICoordinationStore does not implement ICoordinationLeaseStore; register one that does."));
        services.AddSingleton<CoordinationCounters>();
        services.AddSingleton(provider => new BusSettings(options.MapReplayBufferSize, options.MapSendQueueSize, options.MapSessionRetention,
            new KeepAliveJitter(options.KeepAliveInterval, options.JitterRandom), options.MaxQueuedBytesPerTailnet, options.MaxStreamsPerTailnet,
            options.TailnetChangesPerSecond, options.TailnetChangeBurst, options.RebalanceLoadWindow));
        services.AddSingleton(provider => new LeaseKeeper(provider.GetRequiredService<ICoordinationLeaseStore>(),
            new ServerIdentity(ServerIdOf(provider, options), options.AdvertisedUrl ?? "", ServerIdentity.NewInstance()),
            new LeaseSettings(options.LeaseTtl, options.LeaseRenewInterval, options.LeaseSafetyMargin, options.LeaseClaimInterval, options.LeaseClaimLimit,
                options.QuarantineWindow),
            ClockOf(provider, options), provider.GetRequiredService<CoordinationCounters>(), provider.GetRequiredService<ILogger<LeaseKeeper>>()));
        services.AddSingleton(provider => new CoordinationMetrics(provider.GetService<System.Diagnostics.Metrics.IMeterFactory>(),
            provider.GetRequiredService<CoordinationCounters>(), () => provider.GetRequiredService<LeaseKeeper>().HeldLeases().Count));
        services.AddSingleton(provider => new IncidentRecorder(provider.GetRequiredService<ICoordinationLeaseStore>(),
            provider.GetRequiredService<ICoordinationStore>(), provider.GetRequiredService<CoordinationMetrics>(), ClockOf(provider, options),
            options.IncidentTimeout, provider.GetRequiredService<LeaseKeeper>().Server.Id, provider.GetRequiredService<ILogger<IncidentRecorder>>()));
        services.AddSingleton(provider =>
        {
            var hub = new TailnetHub(provider.GetRequiredService<ICoordinationStore>(), provider.GetRequiredService<LeaseKeeper>(),
                provider.GetRequiredService<BusSettings>(), ClockOf(provider, options), provider.GetRequiredService<CoordinationCounters>(),
                provider.GetRequiredService<IncidentRecorder>(), provider.GetRequiredService<ILogger<TailnetHub>>());
            var keeper = provider.GetRequiredService<LeaseKeeper>();
            keeper.SetListener(hub);
            var counters = provider.GetRequiredService<CoordinationCounters>();
            keeper.LoadReport = () => (hub.Load.Sample(hub.Loaded(), keeper.HeldLeases().Count, counters.MapStreamsActive) with
            {
                FencedWrites = counters.FencedWritesRefused,
            }).ToJson();
            return hub;
        });
        services.AddSingleton(provider => new CoordinationRuntime(provider.GetRequiredService<ICoordinationStore>(), ClockOf(provider, options),
            provider.GetRequiredService<ILogger<CoordinationRuntime>>()));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<ServerDirectory>(provider));
        services.AddSingleton(_ => new AddressAllocator());
        services.AddSingleton(provider => new NonceCache(options.NonceCacheCapacity));
        services.AddSingleton(provider => new ProofKeyCache(options.ProofKeyCacheCapacity));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<NodeRegistrar>(provider, ClockOf(provider, options)));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<NodeLifecycle>(provider, ClockOf(provider, options)));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<AdminOperations>(provider, ClockOf(provider, options)));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<NodeProofInterceptor>(provider, ClockOf(provider, options)));
        services.AddSingleton<AdminTokenInterceptor>();
        services.AddSingleton<DomainFailureInterceptor>();
        services.AddSingleton(_ => new PeerChannels(options));
        services.AddSingleton(provider => new AdminForwarder(provider.GetRequiredService<PeerChannels>(), ClockOf(provider, options)));
        services.AddSingleton<IClusterPeers>(provider => new ClusterPeers(provider.GetRequiredService<PeerChannels>()));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<TailnetMover>(provider, ClockOf(provider, options)));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<ClusterOperations>(provider));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<Rebalancer>(provider, ClockOf(provider, options)));
        services.AddHostedService(provider => ActivatorUtilities.CreateInstance<CoordinationHostedService>(provider, ClockOf(provider, options)));

        services.AddGrpc()
            .AddServiceOptions<ControlService>(grpc =>
            {
                grpc.MaxReceiveMessageSize = options.MaxRequestSize;
                grpc.Interceptors.Add<DomainFailureInterceptor>();
                grpc.Interceptors.Add<NodeProofInterceptor>();
            })
            .AddServiceOptions<AdminService>(grpc =>
            {
                grpc.MaxReceiveMessageSize = options.MaxRequestSize;
                grpc.Interceptors.Add<DomainFailureInterceptor>();
                grpc.Interceptors.Add<AdminTokenInterceptor>();
            })
            .AddServiceOptions<ClusterService>(grpc =>
            {
                grpc.MaxReceiveMessageSize = options.MaxRequestSize;
                grpc.Interceptors.Add<DomainFailureInterceptor>();
                grpc.Interceptors.Add<AdminTokenInterceptor>();
            });
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<ControlService>(provider, ClockOf(provider, options)));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<AdminService>(provider));
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<ClusterService>(provider));
        return services;
    }

    /// <summary>The configured server id; a SQLite server (alone by construction) defaults to <c>embedded</c>.</summary>
    private static string ServerIdOf(IServiceProvider provider, CoordinationOptions options) =>
        options.ServerId ?? (provider.GetRequiredService<ICoordinationStore>() is SqliteCoordinationStore
            ? "embedded"
            : throw new InvalidOperationException("CoordinationOptions.ServerId is required when several servers share the store (it is not SQLite)."));

    /// <summary>The options' clock, else the one registered in the container.</summary>
    private static TimeProvider ClockOf(IServiceProvider provider, CoordinationOptions options) =>
        options.TimeProvider ?? provider.GetRequiredService<TimeProvider>();
}
