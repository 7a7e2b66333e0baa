using Xunit.Abstractions;

namespace MeshNet.Integration.Tests.Outage;

/// <summary>
/// Issue test 5: a process killed at any moment while it saves its state and netmap leaves
/// files that load: the last saved sequence or the one being written, never garbage, never a
/// file set aside; the temporary files a kill leaves do not disturb later loads and do not pile
/// up (each save removes those of its file).
/// </summary>
[Trait("Category", "Outage")]
public sealed class StoreCrashSafetyTests(ITestOutputHelper output) : IDisposable
{
    private const int Kills = 48;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "meshnet-crash-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private string StatePath => Path.Combine(_directory, "state.json");

    private string NetmapPath => Path.Combine(_directory, "netmap.bin");

    [Fact]
    public async Task KillingAWriterAtRandomMomentsNeverLeavesAnUnloadableStore()
    {
        // The identity exists before the first run, as it would for a registered node.
        using (var identity = MeshNodeIdentity.Generate())
        {
            await new FileStateStore(StatePath).SaveAsync(identity);
        }
        var random = new Random(20261127);
        int killedMidWrite = 0;
        ulong highest = 0;
        for (int kill = 1; kill <= Kills; kill++)
        {
            int delayMs = kill % 8 == 0 ? 0 : random.Next(0, 51);
            await using (var writer = StoreWriterProcess.Start(_directory))
            {
                ulong start = await writer.WaitForStartAsync(TimeSpan.FromSeconds(30));
                if (delayMs > 0)
                {
                    await Task.Delay(delayMs);
                }
                await writer.KillAsync();
                writer.Errors.Should().BeEmpty();
                ulong last = writer.LastSaved ?? start;

                // Both stores load, with the last saved sequence or the one in flight.
                using var identity = await new FileStateStore(StatePath).LoadAsync();
                identity.Should().NotBeNull($"kill {kill} ({delayMs} ms) must leave a loadable state file");
                (identity!.NodeId ?? 0).Should().BeOneOf([last, last + 1], $"kill {kill}: the state holds the last saved sequence or the next");
                var netmap = await new FileNetmapStore(NetmapPath).LoadAsync(identity);
                if (last == 0 && netmap is null)
                {
                    // Killed before the first netmap was saved.
                }
                else
                {
                    netmap.Should().NotBeNull($"kill {kill} ({delayMs} ms) must leave a loadable netmap after sequence {last}");
                    netmap!.Sequence.Should().BeOneOf([last, last + 1], $"kill {kill}: the netmap is the last saved or the one being written");
                    netmap.Sequence.Should().BeLessThanOrEqualTo(identity.NodeId ?? 0, "the state is saved before the netmap");
                    netmap.PeerCount.Should().Be((int)(netmap.Sequence * 7919 % 1500) + 1, "the content is the netmap of that sequence");
                }
                highest = Math.Max(highest, identity.NodeId ?? 0);

                // Never a file set aside; at most the one temporary file per store a kill mid-write leaves.
                var files = Directory.GetFiles(_directory).Select(Path.GetFileName).ToList();
                files.Should().NotContain(name => name!.Contains(".corrupt-"), $"kill {kill}: nothing was corrupt");
                int temporary = files.Count(name => name!.EndsWith(".tmp", StringComparison.Ordinal));
                temporary.Should().BeLessThanOrEqualTo(2, $"kill {kill}: the temporary files of earlier kills were removed by later saves ({string.Join(", ", files)})");
                killedMidWrite += temporary > 0 ? 1 : 0;
            }
        }
        output.WriteLine($"{Kills} kills; {killedMidWrite} left a temporary file (killed mid-write); reached sequence {highest}.");
        highest.Should().BeGreaterThan(0, "the writer got to save between the kills");

        // A save after all this leaves only the two store files. (When the last writer was killed
        // before it first saved a netmap, there is none to save again: its temporary file stays
        // until the next netmap save, which is the store's contract.)
        bool netmapSaved;
        using (var identity = await new FileStateStore(StatePath).LoadAsync())
        {
            await new FileStateStore(StatePath).SaveAsync(identity!);
            var netmap = await new FileNetmapStore(NetmapPath).LoadAsync(identity!);
            netmapSaved = netmap is not null;
            if (netmap is not null)
            {
                await new FileNetmapStore(NetmapPath).SaveAsync(identity!, netmap);
            }
        }
        var left = Directory.GetFiles(_directory).Select(Path.GetFileName).ToList();
        left.Where(name => netmapSaved || !(name!.StartsWith(".netmap.bin.", StringComparison.Ordinal) && name.EndsWith(".tmp", StringComparison.Ordinal)))
            .Should().BeSubsetOf(["state.json", "netmap.bin"]);
        left.Should().Contain("state.json");
    }
}
