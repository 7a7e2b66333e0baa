using System.Net;
using System.Runtime;
using MeshNet.Coordination;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MeshNet.Bench.ControlFanout;

/// <summary>
/// The child process: a coordination service on 127.0.0.1 (plain HTTP/2, SQLite in a temporary
/// directory) whose HTTP/2 connections may carry thousands of map streams each. It prints
/// <c>ready URL</c>, then answers commands on standard input: <c>mem</c> prints
/// <c>mem MANAGED WORKINGSET</c> (bytes, after a full compacting collection); <c>quit</c> or
/// the end of input stops it.
/// </summary>
internal static class ServeMode
{
    public const string Argument = "--serve";
    public const string AdminTokenVariable = "MESHNET_BENCH_ADMIN_TOKEN";

    public static async Task<int> RunAsync()
    {
        var token = Environment.GetEnvironmentVariable(AdminTokenVariable) ?? throw new InvalidOperationException($"{AdminTokenVariable} is not set.");
        var directory = Directory.CreateTempSubdirectory("meshnet-fanout-").FullName;
        try
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
            {
                kestrel.Limits.Http2.MaxStreamsPerConnection = 20_000;
                kestrel.Limits.Http2.InitialConnectionWindowSize = 8 << 20;
                kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
            });
            builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.Services.AddRouting();
            builder.Services.AddMeshNetCoordination(options =>
            {
                options.DatabasePath = Path.Combine(directory, "coordination.db");
                options.AdminToken = token;
                options.ProofKeyCacheCapacity = 50_000;
                options.NonceCacheCapacity = 1_000_000;
            });
            await using var app = builder.Build();
            app.MapMeshNetCoordination();
            await app.StartAsync();
            var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            Console.WriteLine($"ready {url.TrimEnd('/')}");
            while (await Console.In.ReadLineAsync() is { } command && command != "quit")
            {
                if (command == "mem")
                {
                    GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                    GC.WaitForPendingFinalizers();
                    GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                    Console.WriteLine($"mem {GC.GetTotalMemory(false)} {Environment.WorkingSet}");
                }
            }
            await app.StopAsync();
            return 0;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
