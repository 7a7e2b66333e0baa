// The flood: NODES nodes of one tailnet join through the given servers and stream their netmaps,
// then print "ready". On "start" (a line on standard input) every node reports new endpoints back
// to back on LOOPS loops, each waiting as long as the service says when it refuses (the budget is
// the service's to enforce); on "stop" they stop and it prints "stopped". On "count" it prints
// "accepted N T" (reports accepted so far, at T milliseconds since boot). It ends when standard input closes, or after --seconds (default 600) so that
// it never outlives a test that forgot it.
//
//   dotnet MeshNet.FloodHost.dll URL[,URL...] AUTHKEY NODES LOOPS [--seconds N]
//
// Exit codes: 0 done, 1 the nodes could not join (the message says why), 2 bad arguments.
using System.Globalization;
using MeshNet.TestSupport;

if (args.Length is not (4 or 6) || (args.Length == 6 && args[4] != "--seconds") ||
    !int.TryParse(args[2], CultureInfo.InvariantCulture, out int count) || !int.TryParse(args[3], CultureInfo.InvariantCulture, out int loops))
{
    Console.Error.WriteLine("usage: MeshNet.FloodHost URL[,URL...] AUTHKEY NODES LOOPS [--seconds N]");
    return 2;
}
var servers = args[0].Split(',').Select(url => new Uri(url)).ToList();
using var lifetime = new CancellationTokenSource(TimeSpan.FromSeconds(args.Length == 6 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 600));
var nodes = new List<ControlOnlyNode>();
try
{
    for (int i = 0; i < count; i++)
    {
        var node = await ControlOnlyNode.JoinAsync(servers, args[1], $"flood{i}", lifetime.Token);
        nodes.Add(node);
        node.Start();
    }
    await Task.WhenAll(nodes.Select(node => node.FirstNetmap)).WaitAsync(lifetime.Token);
    Console.WriteLine("ready");

    EndpointChurn? churn = null;
    long accepted = 0;
    while (!lifetime.IsCancellationRequested)
    {
        var line = await Console.In.ReadLineAsync(lifetime.Token);
        if (line is null)
        {
            break; // standard input closed: the test is done
        }
        if (line == "start" && churn is null)
        {
            churn = new EndpointChurn(nodes.SelectMany(node => Enumerable.Repeat(node, loops)));
        }
        else if (line == "stop" && churn is not null)
        {
            accepted += churn.Reported;
            await churn.DisposeAsync();
            churn = null;
            Console.WriteLine("stopped");
        }
        else if (line == "count")
        {
            // With this process's monotonic clock (milliseconds since boot, the same in every
            // process here): the reader times the count by it, not by when the line reached it.
            Console.WriteLine($"accepted {accepted + (churn?.Reported ?? 0)} {Environment.TickCount64}");
        }
    }
    if (churn is not null)
    {
        await churn.DisposeAsync();
    }
    return 0;
}
catch (Exception exception) when (exception is not OperationCanceledException)
{
    Console.Error.WriteLine($"flood: {exception.GetType().Name}: {exception.Message}");
    return 1;
}
catch (OperationCanceledException)
{
    return 0;
}
finally
{
    await Task.WhenAll(nodes.Select(node => node.DisposeAsync().AsTask()));
}
