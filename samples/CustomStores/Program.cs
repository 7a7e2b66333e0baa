// MeshNet CustomStores: a node's identity and last netmap kept in SQLite (one row per node),
// through your own IMeshStateStore and IMeshNetmapStore (see README.md).
//
// Round 1: a coordination service and two nodes, "alpha" and "beta", whose stores are rows of
// one SQLite file; alpha listens on a tailnet port, beta dials it by name and they exchange a
// line. Then both nodes are disposed and the coordination service is STOPPED.
// Round 2: both nodes start again from the same database, with no coordination service at all
// (from the cached netmap, alpha on the UDP port it used before), and beta dials alpha again.
//
//   dotnet run --project samples/CustomStores
//
// Exit codes: 0 success, 1 a failure (the message says which), 2 timed out.
using System.Net;
using System.Text;
using CustomStores;
using MeshNet;
using MeshNet.Coordination;

const int EchoPort = 7000;
var hardTimeout = TimeSpan.FromSeconds(90);
using var timeout = new CancellationTokenSource(hardTimeout);
using var watchdog = new Timer(_ =>
{
    Console.Error.WriteLine($"CustomStores: still running after {hardTimeout.TotalSeconds + 15} s; giving up.");
    Environment.Exit(2);
}, null, hardTimeout + TimeSpan.FromSeconds(15), Timeout.InfiniteTimeSpan);

string directory = Path.Combine(Path.GetTempPath(), "meshnet-customstores-" + Guid.NewGuid().ToString("N")[..8]);
if (OperatingSystem.IsWindows())
{
    Directory.CreateDirectory(directory);
}
else
{
    Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
}
try
{
    await RunAsync(Path.Combine(directory, "nodes.db"), timeout.Token);
    Console.WriteLine("CustomStores: success.");
    return 0;
}
catch (OperationCanceledException) when (timeout.IsCancellationRequested)
{
    Console.Error.WriteLine($"CustomStores: timed out after {hardTimeout.TotalSeconds} s.");
    return 2;
}
catch (MeshException e)
{
    Console.Error.WriteLine($"CustomStores failed: {e.ErrorCode}: {e.Message}");
    return 1;
}
catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException)
{
    Console.Error.WriteLine($"CustomStores failed: {e.Message}");
    return 1;
}
finally
{
    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    Directory.Delete(directory, recursive: true);
}

static async Task RunAsync(string databasePath, CancellationToken cancellationToken)
{
    var database = await SqliteNodeDatabase.OpenAsync(databasePath, cancellationToken);
    Console.WriteLine($"SQLite store: {database.Path} (mode 0600: it holds the nodes' private keys)");

    // ---------------------------------------------------------------- round 1: with coordination
    Console.WriteLine();
    Console.WriteLine("Round 1: with the coordination service");
    var control = await EmbeddedCoordinationServer.StartAsync(new EmbeddedCoordinationOptions(), cancellationToken);
    Uri controlUrl = new(control.Url);
    try
    {
        await control.CreateTailnetAsync("stores", cancellationToken);
        // Not ephemeral: the nodes must stay in the tailnet across their restarts.
        string authKey = await control.CreateAuthKeyAsync("stores", reusable: true, cancellationToken: cancellationToken);
        Console.WriteLine($"  coordination service at {control.Url}, tailnet 'stores'");

        await using (var alpha = await StartNodeAsync(database, "alpha", controlUrl, authKey, cancellationToken))
        await using (var beta = await StartNodeAsync(database, "beta", controlUrl, authKey, cancellationToken))
        {
            await WaitForPeerAsync(alpha, beta, cancellationToken);
            await ExchangeAsync(alpha, beta, "round 1", cancellationToken);
            await WaitForCachedNetmapsAsync(database, cancellationToken, "alpha", "beta");
            Console.WriteLine("  disposing both nodes (each saves its netmap as it stops)");
        }
        await PrintRowsAsync(database, cancellationToken);
    }
    finally
    {
        await control.DisposeAsync();
    }
    Console.WriteLine($"  coordination service stopped: {controlUrl} no longer answers");

    // ---------------------------------------------------------------- round 2: without coordination
    Console.WriteLine();
    Console.WriteLine("Round 2: without the coordination service, from the SQLite stores");
    using var startLimit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    startLimit.CancelAfter(TimeSpan.FromSeconds(30));
    MeshNode alpha2, beta2;
    try
    {
        alpha2 = await StartNodeAsync(database, "alpha", controlUrl, authKey: null, startLimit.Token);
    }
    catch (OperationCanceledException) when (startLimit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
    {
        throw new TimeoutException("alpha did not start from its cached netmap within 30 s while the coordination service is down.");
    }
    await using (alpha2)
    {
        try
        {
            beta2 = await StartNodeAsync(database, "beta", controlUrl, authKey: null, startLimit.Token);
        }
        catch (OperationCanceledException) when (startLimit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException("beta did not start from its cached netmap within 30 s while the coordination service is down.");
        }
        await using (beta2)
        {
            await WaitForPeerAsync(alpha2, beta2, cancellationToken);
            await ExchangeAsync(alpha2, beta2, "round 2, no coordination", cancellationToken);
        }
    }
}

static async Task<MeshNode> StartNodeAsync(SqliteNodeDatabase database, string name, Uri controlUrl, string? authKey, CancellationToken cancellationToken)
{
    var node = await MeshNode.StartAsync(new MeshNodeOptions
    {
        ControlUrl = controlUrl,
        AuthKey = authKey,
        Hostname = name,
        BindAddress = IPAddress.Loopback, // WireGuard over UDP on 127.0.0.1
        StateStore = new SqliteStateStore(database, name),
        NetmapStore = new SqliteNetmapStore(database, name, Console.Error),
        NetmapCacheWriteInterval = TimeSpan.FromMilliseconds(200),
    }, cancellationToken);
    var status = node.GetStatus();
    Console.WriteLine($"  {name}: started as {node.Fqdn} {string.Join(", ", node.Addresses)}, WireGuard UDP port {node.ListenPort}, " +
        $"netmap sequence {status.NetmapSequence}, control connected: {status.ControlConnected}");
    return node;
}

static async Task WaitForPeerAsync(MeshNode alpha, MeshNode beta, CancellationToken cancellationToken)
{
    using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    limit.CancelAfter(TimeSpan.FromSeconds(20));
    try
    {
        while (!(alpha.GetStatus().Peers.Any(p => p.Identity.Name == beta.GetStatus().Name) &&
                 beta.GetStatus().Peers.Any(p => p.Identity.Name == alpha.GetStatus().Name)))
        {
            await Task.Delay(20, limit.Token);
        }
    }
    catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
    {
        throw new TimeoutException("alpha and beta did not see each other in their netmaps within 20 s.");
    }
}

static async Task ExchangeAsync(MeshNode alpha, MeshNode beta, string round, CancellationToken cancellationToken)
{
    await using var listener = await alpha.ListenAsync(EchoPort, cancellationToken);
    var served = Task.Run(async () =>
    {
        await using var incoming = await listener.AcceptAsync(cancellationToken);
        using var reader = new StreamReader(incoming, Encoding.UTF8, leaveOpen: true);
        string? line = await reader.ReadLineAsync(cancellationToken);
        await incoming.WriteAsync(Encoding.UTF8.GetBytes($"alpha heard \"{line}\"\n"), cancellationToken);
        await incoming.FlushAsync(cancellationToken);
    }, cancellationToken);

    using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
    limit.CancelAfter(TimeSpan.FromSeconds(20));
    try
    {
        await using var connection = await beta.DialAsync("alpha", EchoPort, limit.Token);
        await connection.WriteAsync(Encoding.UTF8.GetBytes($"hello from beta ({round})\n"), limit.Token);
        await connection.FlushAsync(limit.Token);
        using var reader = new StreamReader(connection, Encoding.UTF8, leaveOpen: true);
        string reply = await reader.ReadLineAsync(limit.Token) ?? throw new IOException("alpha closed the connection without replying.");
        Console.WriteLine($"  beta -> alpha:{EchoPort}: {reply}");
        await served.WaitAsync(limit.Token);
    }
    catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
    {
        throw new TimeoutException($"beta could not exchange a line with alpha within 20 s ({round}).");
    }
}

static async Task WaitForCachedNetmapsAsync(SqliteNodeDatabase database, CancellationToken cancellationToken, params string[] names)
{
    // The nodes write their netmap a moment after it changes (NetmapCacheWriteInterval), and
    // again when they stop; waiting here only makes the output tell what round 2 starts from.
    var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
    while (DateTime.UtcNow < deadline)
    {
        var rows = await NodeRow.ReadAllAsync(database, cancellationToken);
        if (names.All(name => rows.Any(row => row.Name == name && row.NetmapBytes > 0)))
        {
            return;
        }
        await Task.Delay(50, cancellationToken);
    }
}

static async Task PrintRowsAsync(SqliteNodeDatabase database, CancellationToken cancellationToken)
{
    foreach (var row in await NodeRow.ReadAllAsync(database, cancellationToken))
    {
        Console.WriteLine($"  row '{row.Name}': node {row.NodeId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unregistered"}, " +
            $"UDP port {row.ListenPort}, netmap {(row.NetmapBytes > 0 ? $"{row.NetmapBytes} bytes" : "none")}");
    }
}
