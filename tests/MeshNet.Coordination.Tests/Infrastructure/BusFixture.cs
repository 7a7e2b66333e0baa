using System.Net;
using System.Security.Cryptography;
using MeshNet.Control.V1;
using MeshNet.Coordination.Bus;
using MeshNet.Coordination.Registry;
using MeshNet.Coordination.Storage;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>A <see cref="TailnetBus"/> in memory with stored nodes 1..n and a fake clock.</summary>
internal sealed class BusFixture
{
    private readonly Dictionary<ulong, byte[]> _keys = [];

    public BusFixture(int nodes, int replay = 64, int queue = 64, TimeSpan? keepAlive = null, Random? random = null, string tailnet = "t",
        TimeSpan? retention = null)
    {
        Clock = new FakeTimeProvider(CoordinationHarness.Epoch);
        Settings = new BusSettings(replay, queue, retention ?? TimeSpan.FromMinutes(2), new KeepAliveJitter(keepAlive ?? TimeSpan.FromSeconds(50), random));
        Bus = new TailnetBus(tailnet, $"{tailnet}.meshnet.internal", Settings, Clock, Counters);
        Bus.Load(Enumerable.Range(1, nodes).Select(i => Stored((ulong)i, tailnet)));
    }

    public FakeTimeProvider Clock { get; }

    public CoordinationCounters Counters { get; } = new();

    public BusSettings Settings { get; }

    public TailnetBus Bus { get; }

    public DateTimeOffset Now => Clock.GetUtcNow();

    public byte[] KeyOf(ulong id) => _keys[id];

    public StoredNode Stored(ulong id, string tailnet = "t", DateTimeOffset? keyExpiry = null)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        _keys[id] = key;
        uint address = 0x6440_0000u + (uint)id * 3 + 1;
        return new StoredNode(id, tailnet, key, $"node{id}", $"host{id}", AddressAllocator.ToIPv4(address), AddressAllocator.ToIPv6(address), [],
            false, keyExpiry ?? CoordinationHarness.Epoch.AddDays(180), CoordinationHarness.Epoch, null, null);
    }

    /// <summary>The session handle each node's last full netmap or resume carried.</summary>
    public Dictionary<ulong, string> Handles { get; } = [];

    public MapStream Attach(ulong id, string handle = "", ulong lastSequence = 0, params string[] endpoints)
    {
        var stream = Bus.Attach(id, _keys[id], handle, lastSequence, endpoints, Now, out _);
        if (stream.Reader.TryPeek(out var first))
        {
            Handles[id] = first.Session;
        }
        return stream;
    }

    /// <summary>Every message queued on the stream so far.</summary>
    public static List<MapResponse> Drain(MapStream stream)
    {
        var list = new List<MapResponse>();
        while (stream.Reader.TryRead(out var message))
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
