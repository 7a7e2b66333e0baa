// The store writer: the victim of StoreCrashSafetyTests. It loads the node state and netmap
// cache from DIRECTORY (state.json, netmap.bin), prints "start S" with the netmap's sequence,
// then saves, in a tight loop, the state (NodeId = the sequence) and a netmap of the next
// sequence, printing "saved N" after both saves of N returned. Peer counts (and so file sizes)
// vary from one netmap to the next. It stops by itself after --seconds (default 30) so that it
// never outlives a test that forgot it; the test kills it long before.
//
//   dotnet MeshNet.StoreWriterHost.dll DIRECTORY [--seconds N]
//
// Exit codes: 0 stopped after its time, 1 a store failed (the message says how), 2 bad arguments.
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using MeshNet;
using MeshNet.Control.V1;
using MeshNet.Netmap;

if (args.Length is not (1 or 3) || (args.Length == 3 && args[1] != "--seconds"))
{
    Console.Error.WriteLine("usage: MeshNet.StoreWriterHost DIRECTORY [--seconds N]");
    return 2;
}
var lifetime = TimeSpan.FromSeconds(args.Length == 3 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 30);
var stateStore = new FileStateStore(Path.Combine(args[0], "state.json"));
var netmapStore = new FileNetmapStore(Path.Combine(args[0], "netmap.bin"));
try
{
    using var identity = await stateStore.LoadAsync() ?? MeshNodeIdentity.Generate();
    var cached = await netmapStore.LoadAsync(identity);
    // The last sequence saved whole (the state may be one ahead: killed between the two saves).
    ulong sequence = cached?.Sequence ?? 0;
    Console.WriteLine($"start {sequence}");
    var running = Stopwatch.StartNew();
    while (running.Elapsed < lifetime)
    {
        sequence++;
        identity.NodeId = sequence;
        identity.ListenPort = (int)(sequence % 60000) + 1024;
        await stateStore.SaveAsync(identity);
        await netmapStore.SaveAsync(identity, Netmap(sequence));
        Console.WriteLine($"saved {sequence}");
    }
    return 0;
}
catch (MeshException e)
{
    Console.Error.WriteLine($"store writer failed: {e.ErrorCode}: {e.Message}");
    return 1;
}

// A netmap of sequence n: between 1 and 1,500 peers, in a pattern that makes consecutive sizes
// differ (shrinking as often as growing), so that a torn write would show.
static MeshCachedNetmap Netmap(ulong n)
{
    int peers = (int)(n * 7919 % 1500) + 1;
    var full = new FullMap { Self = Node(1), Domain = "crash.meshnet.internal" };
    for (int id = 2; id <= peers + 1; id++)
    {
        full.Peers.Add(Node(id));
    }
    return MeshCachedNetmap.From(NetmapApplier.ApplyFull(full, "crash-session", n), "crash", DateTimeOffset.UnixEpoch.AddSeconds(n));
}

static Node Node(int id)
{
    var key = new byte[32];
    BitConverter.TryWriteBytes(key, id);
    key[31] = 0x42;
    var node = new Node
    {
        Id = (ulong)id,
        NodeKey = ByteString.CopyFrom(key),
        Name = $"node{id}",
        Hostname = $"node{id}",
        Online = true,
    };
    node.Addresses.Add($"100.64.{id >> 8}.{id & 0xff}");
    node.Addresses.Add($"fd7a:115c:a1e0::{id:x}");
    node.Endpoints.Add($"192.0.2.{id & 0xff}:41641");
    return node;
}
