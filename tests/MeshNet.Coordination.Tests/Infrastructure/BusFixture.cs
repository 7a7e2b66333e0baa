using System.Net;
using System.Security.Cryptography;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Storage;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>
/// A <see cref="TailnetBus"/> in memory with stored nodes 1..n and a fake clock. The helpers do
/// what the service does around the bus: live state (online, endpoints, run id) is "committed"
/// at the next revision and then published, before a stream attaches or after it detaches.
/// </summary>
internal sealed class BusFixture
{
    private readonly Dictionary<ulong, byte[]> _keys = [];
    private ulong _revision;

    public BusFixture(int nodes, int replay = 64, int queue = 64, TimeSpan? keepAlive = null, Random? random = null, string tailnet = "t",
        TimeSpan? retention = null, ulong epoch = 1)
    {
        Clock = new FakeTimeProvider(CoordinationHarness.Epoch);
        Settings = new BusSettings(replay, queue, retention ?? TimeSpan.FromMinutes(2), new KeepAliveJitter(keepAlive ?? TimeSpan.FromSeconds(50), random));
        Bus = new TailnetBus(tailnet, $"{tailnet}.meshnet.internal", epoch, Settings, Clock, Counters);
        Bus.Load(Enumerable.Range(1, nodes).Select(i => Stored((ulong)i, tailnet)));
    }

    public FakeTimeProvider Clock { get; }

    public CoordinationCounters Counters { get; } = new();

    public BusSettings Settings { get; }

    public TailnetBus Bus { get; }

    public DateTimeOffset Now => Clock.GetUtcNow();

    /// <summary>How the last <see cref="Attach"/> started its stream.</summary>
    public AttachKind LastKind { get; private set; }

    public byte[] KeyOf(ulong id) => _keys[id];

    /// <summary>The next revision, as a committed write would get it.</summary>
    public ulong NextRevision() => ++_revision;

    public StoredNode Stored(ulong id, string tailnet = "t", DateTimeOffset? keyExpiry = null, IReadOnlyList<string>? tags = null)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        _keys[id] = key;
        uint address = 0x6440_0000u + (uint)id * 3 + 1;
        return new StoredNode(id, tailnet, key, $"node{id}", $"host{id}", AddressAllocator.ToIPv4(address), AddressAllocator.ToIPv6(address), tags ?? [],
            false, keyExpiry ?? CoordinationHarness.Epoch.AddDays(180), CoordinationHarness.Epoch, null, null);
    }

    /// <summary>A node joins (or its record is replaced) at the next revision.</summary>
    public void Upsert(ulong id, IReadOnlyList<string>? tags = null) => Bus.Upsert(Stored(id, tags: tags), NextRevision());

    /// <summary>The session handle each node's last full netmap or resume carried.</summary>
    public Dictionary<ulong, string> Handles { get; } = [];

    /// <summary>Connects a node as the service does: its live state first (committed, published), then the stream.</summary>
    public MapStream Attach(ulong id, string handle = "", ulong lastSequence = 0, ulong lastRevision = 0, string instance = "", params string[] endpoints)
    {
        if (Bus.LiveStateOnAttach(id, _keys[id], endpoints, instance, Now) is { } live)
        {
            Bus.ApplyLive([live], NextRevision());
        }
        var stream = Bus.Attach(id, _keys[id], handle, lastSequence, lastRevision, Now, out var kind);
        LastKind = kind;
        if (stream.TryPeek(out var first))
        {
            Handles[id] = first.Session;
        }
        return stream;
    }

    /// <summary>A stream ends as the service ends it: detached, and the node written offline when it has no other stream.</summary>
    public bool Detach(MapStream stream)
    {
        if (!Bus.Detach(stream, Now))
        {
            return false;
        }
        if (Bus.LiveStateOffline(stream.NodeId, Now) is { } offline)
        {
            Bus.ApplyLive([offline], NextRevision());
        }
        return true;
    }

    /// <summary>A node reports endpoints: false when nothing changed.</summary>
    public bool UpdateEndpoints(ulong id, params string[] endpoints)
    {
        if (Bus.LiveStateOnEndpoints(id, endpoints) is not { } live)
        {
            return false;
        }
        Bus.ApplyLive([live], NextRevision());
        return true;
    }

    /// <summary>Every message queued on the stream so far.</summary>
    public static List<MapResponse> Drain(MapStream stream)
    {
        var list = new List<MapResponse>();
        while (stream.TryRead(out var message))
        {
            list.Add(message);
        }
        return list;
    }

    /// <summary>Attaches 1..n and drains their full netmaps.</summary>
    public List<MapStream> AttachAll(int count)
    {
        var streams = Enumerable.Range(1, count).Select(i => Attach((ulong)i)).ToList();
        foreach (var stream in streams)
        {
            Drain(stream);
        }
        return streams;
    }
}
