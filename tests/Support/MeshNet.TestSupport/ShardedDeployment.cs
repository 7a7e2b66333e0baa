using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Protocol;
using AdminApi = MeshNet.Control.V1.Admin;

namespace MeshNet.TestSupport;

/// <summary>
/// A deployment of coordination servers on PostgreSQL, each its own process
/// (<see cref="CoordinatorProcess"/>, ids s1, s2, ...), on a database of its own in a shared
/// throwaway cluster, with short leases (TTL 2 s unless tuned) so that faults resolve quickly.
/// Admin calls go to any live server (they are forwarded to the tailnet's owner). Disposing kills
/// every server.
/// </summary>
public sealed class ShardedDeployment : IAsyncDisposable
{
    /// <summary>The admin token of every server.</summary>
    public const string AdminToken = "sharded-deployment-admin-token";

    /// <summary>The lease TTL of a deployment not tuned otherwise.</summary>
    public static readonly TimeSpan DefaultLeaseTtl = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _tuning;
    private readonly Func<int, int?>? _uidOf;

    private ShardedDeployment(string connectionString, Dictionary<string, string> tuning, Func<int, int?>? uidOf)
    {
        ConnectionString = connectionString;
        _tuning = tuning;
        _uidOf = uidOf;
    }

    /// <summary>The deployment's database.</summary>
    public string ConnectionString { get; }

    /// <summary>The servers, by position (s1 first).</summary>
    public List<CoordinatorProcess> Servers { get; } = [];

    /// <summary>The lease TTL in force.</summary>
    public TimeSpan LeaseTtl => TimeSpan.Parse(_tuning["LeaseTtl"], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Every server's URL (what nodes are given).</summary>
    public IReadOnlyList<Uri> Urls => [.. Servers.Select(server => new Uri(server.Url))];

    /// <summary>
    /// Starts <paramref name="servers"/> servers on a new database of <paramref name="cluster"/>.
    /// <paramref name="tuning"/> overrides CoordinationOptions by property name (durations as
    /// <see cref="CoordinatorProcess.Duration"/> formats them); <paramref name="uidOf"/> gives a server
    /// (by index) its own user id.
    /// </summary>
    public static async Task<ShardedDeployment> StartAsync(PostgresCluster cluster, int servers, IReadOnlyDictionary<string, string>? tuning = null,
        Func<int, int?>? uidOf = null)
    {
        TestHostThreadPool.Reserve();
        var settings = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["LeaseTtl"] = CoordinatorProcess.Duration(DefaultLeaseTtl),
            ["LeaseRenewInterval"] = CoordinatorProcess.Duration(TimeSpan.FromMilliseconds(400)),
            ["LeaseSafetyMargin"] = CoordinatorProcess.Duration(TimeSpan.FromMilliseconds(300)),
            ["LeaseClaimInterval"] = CoordinatorProcess.Duration(TimeSpan.FromMilliseconds(100)),
            ["MaintenanceInterval"] = CoordinatorProcess.Duration(TimeSpan.FromSeconds(1)),
            ["RebalanceInterval"] = CoordinatorProcess.Duration(TimeSpan.Zero),
            ["IncidentTimeout"] = CoordinatorProcess.Duration(TimeSpan.FromSeconds(30)),
        };
        foreach (var (name, value) in tuning ?? new Dictionary<string, string>())
        {
            settings[name] = value;
        }
        var deployment = new ShardedDeployment(await cluster.CreateDatabaseAsync().ConfigureAwait(false), settings, uidOf);
        try
        {
            for (int i = 0; i < servers; i++)
            {
                await deployment.AddServerAsync().ConfigureAwait(false);
            }
            return deployment;
        }
        catch
        {
            await deployment.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts one more server (the next id).</summary>
    public async Task<CoordinatorProcess> AddServerAsync()
    {
        int index = Servers.Count;
        var server = await CoordinatorProcess.StartAsync($"s{index + 1}", ConnectionString, AdminToken, _tuning, _uidOf?.Invoke(index)).ConfigureAwait(false);
        Servers.Add(server);
        return server;
    }

    /// <summary>The server with that id.</summary>
    public CoordinatorProcess Server(string id) => Servers.Single(server => server.ServerId == id);

    /// <summary>An Admin client on a serving server (the first, unless <paramref name="server"/> names one).</summary>
    public AdminApi.AdminClient Admin(CoordinatorProcess? server = null)
    {
        server ??= Servers.First(candidate => candidate.IsServing);
        if (!_channels.TryGetValue(server.Url, out var channel))
        {
            channel = GrpcChannel.ForAddress(server.Url);
            _channels[server.Url] = channel;
        }
        return new AdminApi.AdminClient(channel);
    }

    /// <summary>Headers of an admin call, with an idempotency key when given.</summary>
    public static Metadata AdminHeaders(string? idempotencyKey = null)
    {
        var headers = new Metadata { { "authorization", $"Bearer {AdminToken}" } };
        if (idempotencyKey is not null)
        {
            headers.Add(ControlErrors.IdempotencyKeyHeader, idempotencyKey);
        }
        return headers;
    }

    /// <summary>Creates a tailnet and a reusable auth key (at any server), and waits until a server serves it.</summary>
    /// <returns>The auth key.</returns>
    public async Task<string> CreateTailnetAsync(string name)
    {
        await Admin().CreateTailnetAsync(new CreateTailnetRequest { Name = name }, AdminHeaders()).ConfigureAwait(false);
        var key = await CallAsync(admin => admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = name, Reusable = true, Lifetime = new() { Seconds = 86400 } },
            AdminHeaders($"key-{name}")).ResponseAsync).ConfigureAwait(false);
        await OwnerAsync(name).ConfigureAwait(false);
        return key.Secret;
    }

    /// <summary>The tailnet's lease (as ListLeases reports it).</summary>
    public async Task<TailnetLease> LeaseAsync(string tailnet)
    {
        var leases = await CallAsync(admin => admin.ListLeasesAsync(new ListLeasesRequest(), AdminHeaders()).ResponseAsync).ConfigureAwait(false);
        return leases.Leases.Single(lease => lease.Tailnet == tailnet);
    }

    /// <summary>The server that serves the tailnet now, waiting (up to a minute) until one does.</summary>
    public async Task<CoordinationServerRef> OwnerAsync(string tailnet, string? not = null)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            var lease = await LeaseAsync(tailnet).ConfigureAwait(false);
            if (lease.Owner.Length > 0 && lease.ExpiresIn.ToTimeSpan() > TimeSpan.Zero && lease.Owner != not)
            {
                return new CoordinationServerRef(Server(lease.Owner), lease.Epoch);
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"No server took tailnet {tailnet} within a minute (lease: owner '{lease.Owner}', epoch {lease.Epoch}).");
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    /// <summary>The incidents, newest first.</summary>
    public async Task<IReadOnlyList<Incident>> IncidentsAsync() =>
        (await CallAsync(admin => admin.ListIncidentsAsync(new ListIncidentsRequest { Limit = 200 }, AdminHeaders()).ResponseAsync).ConfigureAwait(false))
        .Incidents;

    /// <summary>
    /// An admin call at a serving server, retried at the next one while servers are down, busy
    /// taking over or slow to answer (each try gets <see cref="TryTimeout"/>; a try that runs out is
    /// left to finish on its own).
    /// </summary>
    public async Task<T> CallAsync<T>(Func<AdminApi.AdminClient, Task<T>> call)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        int next = 0;
        while (true)
        {
            var serving = Servers.Where(server => server.IsServing).ToList();
            var server = serving[next++ % serving.Count];
            try
            {
                return await call(Admin(server)).WaitAsync(TryTimeout).ConfigureAwait(false);
            }
            catch (Exception exception) when (DateTime.UtcNow < deadline &&
                exception is TimeoutException or RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded })
            {
                await Task.Delay(100).ConfigureAwait(false);
            }
        }
    }

    /// <summary>How long one try of <see cref="CallAsync"/> may take before the next server is tried.</summary>
    public static TimeSpan TryTimeout { get; } = TimeSpan.FromSeconds(20);

    public async ValueTask DisposeAsync()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
        foreach (var server in Servers)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>A server and the epoch under which it serves a tailnet.</summary>
/// <param name="Server">The server.</param>
/// <param name="Epoch">The lease's epoch.</param>
public sealed record CoordinationServerRef(CoordinatorProcess Server, ulong Epoch);
