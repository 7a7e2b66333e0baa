using System.Net;
using System.Security.Cryptography;
using Google.Protobuf.WellKnownTypes;
using MeshNet.Control.V1;
using MeshNet.Coordination.Registry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MeshNet.Coordination;

/// <summary>
/// A coordination server in the current process, for samples and tests: Kestrel on a loopback
/// address with plain HTTP/2, SQLite in a given or temporary directory, and an admin token
/// (generated if not given). Nodes connect to <see cref="Url"/>.
/// </summary>
/// <remarks>Disposing stops the server (open map streams end with Unavailable) and deletes a temporary directory it created. Idempotent.</remarks>
public sealed class EmbeddedCoordinationServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string? _temporaryDirectory;
    private int _disposed;

    private EmbeddedCoordinationServer(WebApplication app, string url, string adminToken, string databasePath, string? temporaryDirectory)
    {
        _app = app;
        Url = url;
        AdminToken = adminToken;
        DatabasePath = databasePath;
        _temporaryDirectory = temporaryDirectory;
    }

    /// <summary>The base address nodes and admin clients connect to, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public string Url { get; }

    /// <summary>The admin token (for <c>authorization: Bearer</c>).</summary>
    public string AdminToken { get; }

    /// <summary>The SQLite database file.</summary>
    public string DatabasePath { get; }

    /// <summary>The server's services.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>The service's counters.</summary>
    public CoordinationCounters Counters => _app.Services.GetRequiredService<CoordinationCounters>();

    /// <summary>Starts a server.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public static async Task<EmbeddedCoordinationServer> StartAsync(EmbeddedCoordinationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var uri = options.ValidateUrl();
        var adminToken = options.AdminToken ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        string? temporary = null;
        var directory = options.DataDirectory;
        if (directory is null)
        {
            temporary = Directory.CreateTempSubdirectory("meshnet-coordination-").FullName;
            directory = temporary;
        }
        var databasePath = Path.Combine(directory, "coordination.db");
        WebApplication? app = null;
        try
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
                kestrel.Listen(LoopbackAddress(uri), uri.Port, listen => listen.Protocols = HttpProtocols.Http2));
            builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(5));
            if (options.LoggerFactory is not null)
            {
                builder.Services.AddSingleton(options.LoggerFactory);
            }
            builder.Services.AddRouting();
            builder.Services.AddMeshNetCoordination(coordination =>
            {
                coordination.DatabasePath = databasePath;
                coordination.AdminToken = adminToken;
                coordination.TimeProvider = options.TimeProvider;
                options.Configure?.Invoke(coordination);
            });
            app = builder.Build();
            app.MapMeshNetCoordination();
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new EmbeddedCoordinationServer(app, address.TrimEnd('/'), adminToken, databasePath, temporary);
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }
            DeleteDirectory(temporary);
            throw;
        }
    }

    /// <summary>Creates a tailnet (domain <c>&lt;name&gt;.meshnet.internal</c>, default key lifetime).</summary>
    /// <returns>The tailnet's DNS domain.</returns>
    /// <exception cref="CoordinationException">The name is malformed (<see cref="CoordinationErrorCode.InvalidRequest"/>) or taken (<see cref="CoordinationErrorCode.AlreadyExists"/>).</exception>
    public async Task<string> CreateTailnetAsync(string name, CancellationToken cancellationToken = default)
    {
        var tailnet = await Operations.CreateTailnetAsync(new CreateTailnetRequest { Name = name }, cancellationToken).ConfigureAwait(false);
        return tailnet.Domain;
    }

    /// <summary>Creates an auth key for <paramref name="tailnet"/>; nodes registered with it belong to <paramref name="user"/> (null: none).</summary>
    /// <returns>The secret form of the key (<c>mnkey-...</c>), to pass to nodes.</returns>
    /// <exception cref="CoordinationException">A malformed argument (<see cref="CoordinationErrorCode.InvalidRequest"/>) or an unknown tailnet (<see cref="CoordinationErrorCode.NotFound"/>).</exception>
    public async Task<string> CreateAuthKeyAsync(string tailnet, bool reusable = false, bool ephemeral = false, IEnumerable<string>? tags = null,
        TimeSpan? lifetime = null, CancellationToken cancellationToken = default, string? user = null)
    {
        var request = new CreateAuthKeyRequest { Tailnet = tailnet, Reusable = reusable, Ephemeral = ephemeral, User = user ?? "" };
        request.Tags.Add(tags ?? []);
        if (lifetime is { } span)
        {
            request.Lifetime = Duration.FromTimeSpan(span);
        }
        var response = await Operations.CreateAuthKeyAsync(request, cancellationToken).ConfigureAwait(false);
        return response.Secret;
    }

    /// <summary>
    /// Saves the tailnet's ACL policy (HuJSON; empty removes it) after validating it and running
    /// its tests; affected nodes get the change on their map streams.
    /// </summary>
    /// <returns>The saved policy's version.</returns>
    /// <exception cref="CoordinationException">
    /// An invalid policy (<see cref="CoordinationErrorCode.InvalidPolicy"/>, "line L, column C:
    /// problem"), failing policy tests (<see cref="CoordinationErrorCode.PolicyTestFailed"/>) or an
    /// unknown tailnet (<see cref="CoordinationErrorCode.NotFound"/>); the previous policy stays in force.
    /// </exception>
    public async Task<ulong> SetPolicyAsync(string tailnet, string policy, CancellationToken cancellationToken = default)
    {
        var response = await Operations.SetPolicyAsync(new SetPolicyRequest { Tailnet = tailnet, Policy = policy ?? "" }, cancellationToken).ConfigureAwait(false);
        return response.Version;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        try
        {
            await _app.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            DeleteDirectory(_temporaryDirectory);
        }
    }

    private AdminOperations Operations => _app.Services.GetRequiredService<AdminOperations>();

    private static IPAddress LoopbackAddress(Uri uri) =>
        uri.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(uri.Host.Trim('[', ']'));

    private static void DeleteDirectory(string? directory)
    {
        if (directory is null)
        {
            return;
        }
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temporary directory left behind is not an error.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
