using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// A netmap cache file that is corrupt, truncated, tampered with, another node's, or of an
/// unknown version: the node logs a clear warning, keeps the bad file aside (byte for byte,
/// never deleted) and starts through the coordination service. Real files, real nodes.
/// </summary>
[Trait("Category", "Outage")]
public sealed class BadNetmapFileTests
{
    /// <summary>Each bad file, and the problem the warning names for it (MeshCachedNetmap.Deserialize's reason).</summary>
    public static TheoryData<string, string> Variants => new()
    {
        // Every 7th byte from index 3 flipped: the magic (bytes 0-3) is the first thing wrong.
        { "corrupt", "the data is not a MeshNet netmap cache (wrong magic)" },
        { "truncated", "the netmap cache is truncated or has trailing bytes" },
        { "tampered", "the netmap cache failed its integrity check (it was modified or corrupted)" },
        { "foreign", "the netmap cache belongs to another node key" },
        { "unknown version", "the netmap cache has format version 9, which this MeshNet does not know (it reads version 1)" },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task ABadCacheFileIsSetAsideWithAWarningAndTheNodeStartsThroughControl(string variant, string problem)
    {
        await using var tailnet = await OutageTailnet.StartAsync();
        var key = await tailnet.Server.CreateAuthKeyAsync("acme", reusable: true);
        var directory = Path.Combine(tailnet.Directory, "node-a");
        var statePath = Path.Combine(directory, "state.json");
        var netmapPath = Path.Combine(directory, "netmap.bin");
        var otherNetmapPath = Path.Combine(tailnet.Directory, "node-b", "netmap.bin");

        // Two nodes run with file stores and stop: each leaves its own cache file.
        var a = await tailnet.StartNodeAsync(tailnet.Options("a", key, new FileStateStore(statePath), new FileNetmapStore(netmapPath)));
        var b = await tailnet.StartNodeAsync(tailnet.Options("b", key, new FileStateStore(Path.Combine(tailnet.Directory, "node-b", "state.json")),
            new FileNetmapStore(otherNetmapPath)));
        await TestTailnet.WaitForPeerAsync(a, "b");
        await TestTailnet.WaitForPeerAsync(b, "a");
        ulong id = a.NodeId;
        await a.DisposeAsync();
        await b.DisposeAsync();
        File.Exists(netmapPath).Should().BeTrue();

        var good = await File.ReadAllBytesAsync(netmapPath);
        byte[] bad = variant switch
        {
            "corrupt" => [.. good.Select((value, i) => i % 7 == 3 ? (byte)~value : value)],
            "truncated" => good[..(good.Length / 2)],
            "tampered" => Flip(good, good.Length / 2),
            "foreign" => await File.ReadAllBytesAsync(otherNetmapPath),
            _ => Version(good, 9),
        };
        await File.WriteAllBytesAsync(netmapPath, bad);

        var logs = new RecordingLoggerFactory();
        var options = tailnet.Options("a", key, new FileStateStore(statePath), new FileNetmapStore(netmapPath, logs));
        options.LoggerFactory = logs;
        var restarted = await tailnet.StartNodeAsync(options);

        var status = restarted.GetStatus();
        status.NetmapSource.Should().Be(MeshNetmapSource.Live, "the node started through the coordination service");
        status.ControlConnected.Should().BeTrue();
        restarted.NodeId.Should().Be(id, "the identity file was fine: the same node came back");
        logs.AllText.Should().Contain("Warning 4171").And.Contain(netmapPath).And.Contain("moved aside to");
        var warning = logs.AllText.Split('\n').Should().ContainSingle(line => line.Contains(" Warning 4171 ")).Subject;
        warning.Should().Contain($"Netmap cache file {netmapPath} is unusable ({problem}", "the warning says what is wrong with the file")
            .And.Contain("moved aside to");
        var aside = Directory.GetFiles(directory, "netmap.bin.corrupt-*").Should().ContainSingle().Subject;
        (await File.ReadAllBytesAsync(aside)).Should().Equal(bad, "the bad file is kept as it was");
        await TestTailnet.WaitForPeerAsync(restarted, "b");
    }

    private static byte[] Flip(byte[] bytes, int index)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] ^= 0x20;
        return copy;
    }

    private static byte[] Version(byte[] bytes, byte version)
    {
        var copy = (byte[])bytes.Clone();
        copy[4] = version;
        return copy;
    }
}
