// A MeshNet node in its own process, for the outage tests. Usage:
//   MeshNet.NodeHost --control URL [--auth-key KEY] --hostname NAME --state FILE --netmap FILE
//                    [--write-interval-ms N] [--serve PORT]
// Prints machine-readable lines on standard output:
//   ready port=P source=Cached|Live ms=N     StartAsync returned (its duration in ms)
//   accepted ID / echo ID TEXT               a connection to the served port, and each line it echoed
//   connected NAME / reply NAME TEXT         answers to the commands below
//   status source=S control=True|False peers=N
//   error TEXT                               a command failed
// Commands on standard input, one a line: "serve PORT", "dial HOST PORT NAME" (a connection
// the test names), "send NAME TEXT" (one line, answered by the echo), "status", "quit".
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using MeshNet;

var settings = new Dictionary<string, string>();
for (int i = 0; i + 1 < args.Length; i += 2)
{
    settings[args[i].TrimStart('-')] = args[i + 1];
}
string Setting(string name) => settings.TryGetValue(name, out var value) ? value : throw new ArgumentException($"--{name} is required");

var output = new object();
void Say(string line)
{
    lock (output)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }
}

var options = new MeshNodeOptions
{
    ControlUrl = new Uri(Setting("control")),
    AuthKey = settings.GetValueOrDefault("auth-key"),
    Hostname = Setting("hostname"),
    BindAddress = IPAddress.Loopback,
    StateStore = new FileStateStore(Setting("state")),
    NetmapStore = new FileNetmapStore(Setting("netmap")),
    NetmapCacheWriteInterval = TimeSpan.FromMilliseconds(int.Parse(settings.GetValueOrDefault("write-interval-ms", "50"))),
    StartTimeout = TimeSpan.FromSeconds(30),
    ControlReconnectMinDelay = TimeSpan.FromMilliseconds(50),
    ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(500),
};

var clock = Stopwatch.StartNew();
await using var node = await MeshNode.StartAsync(options);
Say($"ready port={node.ListenPort} source={node.GetStatus().NetmapSource} ms={clock.ElapsedMilliseconds}");

var connections = new ConcurrentDictionary<string, (StreamReader Reader, StreamWriter Writer)>();
int nextId = 0;

async Task ServeAsync(int port)
{
    var listener = await node.ListenAsync(port);
    while (true)
    {
        var connection = await listener.AcceptAsync();
        int id = Interlocked.Increment(ref nextId);
        Say($"accepted {id}");
        _ = Task.Run(async () =>
        {
            using var reader = new StreamReader(connection);
            await using var writer = new StreamWriter(connection) { AutoFlush = true };
            while (await reader.ReadLineAsync() is { } line)
            {
                await writer.WriteLineAsync(line);
                Say($"echo {id} {line}");
            }
        });
    }
}

if (settings.TryGetValue("serve", out var servePort))
{
    _ = ServeAsync(int.Parse(servePort));
}

while (Console.In.ReadLine() is { } command)
{
    var parts = command.Split(' ', command.StartsWith("dial ", StringComparison.Ordinal) ? 4 : 3);
    try
    {
        switch (parts[0])
        {
            case "serve":
                _ = ServeAsync(int.Parse(parts[1]));
                break;
            case "dial":
                var stream = await node.DialAsync(parts[1], int.Parse(parts[2])).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
                connections[parts[3]] = (new StreamReader(stream), new StreamWriter(stream) { AutoFlush = true });
                Say($"connected {parts[3]}");
                break;
            case "send":
                var (reader, writer) = connections[parts[1]];
                await writer.WriteLineAsync(parts[2]);
                var reply = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Say($"reply {parts[1]} {reply}");
                break;
            case "status":
                var status = node.GetStatus();
                Say($"status source={status.NetmapSource} control={status.ControlConnected} peers={status.Peers.Count}");
                break;
            case "quit":
                return 0;
            default:
                Say($"error unknown command {parts[0]}");
                break;
        }
    }
    catch (Exception e) when (e is MeshException or IOException or TimeoutException or KeyNotFoundException or FormatException)
    {
        Say($"error {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
    }
}
return 0;
