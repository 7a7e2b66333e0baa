using MeshNet.Netmap;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using static MeshNet.Tests.Support.TestNodes;

namespace MeshNet.Tests.State;

/// <summary>
/// <see cref="FileNetmapStore"/>: a faithful round trip in an owner-only file, every unusable
/// file set aside (kept byte for byte) with a warning and the node starting from control, and
/// I/O failures reported as <see cref="MeshErrorCode.StateStoreFailed"/>.
/// </summary>
[Trait("Category", "Unit")]
public sealed class FileNetmapStoreTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "meshnet-netmap-" + Guid.NewGuid().ToString("N"));
    private readonly MeshNodeIdentity _identity = MeshNodeIdentity.Generate();

    public void Dispose()
    {
        _identity.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private string NetmapPath => Path.Combine(_directory, "node", "netmap.bin");

    private static MeshCachedNetmap Netmap(ulong sequence, int peers = 3)
    {
        var full = Full(Node(1), [.. Enumerable.Range(2, peers).Select(id => Node(id))]);
        return MeshCachedNetmap.From(NetmapApplier.ApplyFull(full, "session-1", sequence), "acme", Now);
    }

    [Fact]
    public async Task ARoundTripKeepsTheNetmapAndCreatesTheDirectory()
    {
        var store = new FileNetmapStore(NetmapPath);
        (await store.LoadAsync(_identity)).Should().BeNull("there is no file yet");

        await store.SaveAsync(_identity, Netmap(42, peers: 5));
        var loaded = await new FileNetmapStore(NetmapPath).LoadAsync(_identity);
        loaded.Should().NotBeNull();
        loaded!.Sequence.Should().Be(42);
        loaded.PeerCount.Should().Be(5);
        loaded.Tailnet.Should().Be("acme");
        loaded.ReceivedAt.Should().Be(Now);
        (await File.ReadAllBytesAsync(NetmapPath)).Should().Equal(Netmap(42, peers: 5).Serialize(_identity),
            "the file holds exactly the serialized envelope");

        await store.SaveAsync(_identity, Netmap(43, peers: 1));
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(43);
        Directory.GetFiles(Path.GetDirectoryName(NetmapPath)!).Should().Equal([NetmapPath], "no temporary file is left behind");
    }

    [Fact]
    public async Task TheFileIsOwnerOnlyAndANewDirectoryToo()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(NetmapPath)!);
        await File.WriteAllTextAsync(NetmapPath, "old");
        File.SetUnixFileMode(NetmapPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        await new FileNetmapStore(NetmapPath).SaveAsync(_identity, Netmap(1));
        File.GetUnixFileMode(NetmapPath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite, "a new file replaced the old one");

        string nested = Path.Combine(_directory, "fresh", "netmap.bin");
        await new FileNetmapStore(nested).SaveAsync(_identity, Netmap(1));
        File.GetUnixFileMode(Path.GetDirectoryName(nested)!).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.GetUnixFileMode(nested).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task LooseFilePermissionsAreWarnedAbout()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        var logs = new RecordingLoggerFactory();
        var store = new FileNetmapStore(NetmapPath, logs);
        await store.SaveAsync(_identity, Netmap(7));
        File.SetUnixFileMode(NetmapPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite);
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(7);
        logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4172 && e.Level == LogLevel.Warning).Which.Message.Should().Contain("620");
    }

    public static TheoryData<string, string> BadFiles => new()
    {
        { "truncated", "truncated" },
        { "bit flipped", "integrity" },
        { "foreign key", "another node key" },
        { "unknown version", "format version 9" },
        { "garbage", "not a MeshNet netmap cache" },
        { "empty", "truncated" },
        { "trailing bytes", "trailing" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public async Task AnUnusableFileIsSetAsideWithItsBytesAndAWarning(string variant, string reason)
    {
        var good = Netmap(42).Serialize(_identity);
        using var other = MeshNodeIdentity.Generate();
        byte[] bad = variant switch
        {
            "truncated" => good[..(good.Length / 2)],
            "bit flipped" => Flip(good, 70),
            "foreign key" => Netmap(42).Serialize(other),
            "unknown version" => Replace(good, 4, 9),
            "garbage" => "{\"peers\": [\"not a netmap\"]}"u8.ToArray(),
            "empty" => [],
            "trailing bytes" => [.. good, 0x00],
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        Directory.CreateDirectory(Path.GetDirectoryName(NetmapPath)!);
        await File.WriteAllBytesAsync(NetmapPath, bad);
        var logs = new RecordingLoggerFactory();
        var store = new FileNetmapStore(NetmapPath, logs, new FakeTimeProvider(Now));

        (await store.LoadAsync(_identity)).Should().BeNull("the node starts from the coordination service");

        string aside = NetmapPath + ".corrupt-20261127T120000Z";
        File.Exists(NetmapPath).Should().BeFalse();
        (await File.ReadAllBytesAsync(aside)).Should().Equal(bad, "the file is kept as it was, for inspection");
        var warning = logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4171 && e.Level == LogLevel.Warning).Which;
        warning.Message.Should().Contain(NetmapPath).And.Contain(aside).And.Contain(reason);

        // The node goes on: a new save works and loads; the set-aside file is still there.
        await store.SaveAsync(_identity, Netmap(43));
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(43);
        File.Exists(aside).Should().BeTrue();
    }

    [Fact]
    public async Task ATooLargeFileIsSetAsideWithoutBeingRead()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(NetmapPath)!);
        await using (var file = File.Create(NetmapPath))
        {
            file.SetLength(MeshCachedNetmap.MaxSerializedSize + 1L); // sparse where the file system allows
        }
        var logs = new RecordingLoggerFactory();
        var store = new FileNetmapStore(NetmapPath, logs, new FakeTimeProvider(Now));

        (await store.LoadAsync(_identity)).Should().BeNull();

        string aside = NetmapPath + ".corrupt-20261127T120000Z";
        new FileInfo(aside).Length.Should().Be(MeshCachedNetmap.MaxSerializedSize + 1L);
        logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4171).Which.Message.Should().Contain("larger than").And.Contain(aside);
        await store.SaveAsync(_identity, Netmap(1));
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(1);
    }

    [Fact]
    public async Task ASetAsideFileIsNeverOverwritten()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(NetmapPath)!);
        var store = new FileNetmapStore(NetmapPath, null, new FakeTimeProvider(Now));
        string aside = NetmapPath + ".corrupt-20261127T120000Z";
        await File.WriteAllTextAsync(aside + "-2", "set aside by hand");
        for (int i = 1; i <= 3; i++)
        {
            await File.WriteAllTextAsync(NetmapPath, $"bad {i}");
            (await store.LoadAsync(_identity)).Should().BeNull();
        }
        (await File.ReadAllTextAsync(aside)).Should().Be("bad 1");
        (await File.ReadAllTextAsync(aside + "-2")).Should().Be("set aside by hand");
        (await File.ReadAllTextAsync(aside + "-3")).Should().Be("bad 2");
        (await File.ReadAllTextAsync(aside + "-4")).Should().Be("bad 3");
    }

    [Fact]
    public async Task AnUnreadableFileFailsWithStateStoreFailedAndIsLeftAlone()
    {
        var store = new FileNetmapStore(NetmapPath);
        // Something that exists but cannot be opened as a file (works as root, too).
        Directory.CreateDirectory(NetmapPath);
        var load = async () => await store.LoadAsync(_identity);
        (await load.Should().ThrowAsync<MeshException>()).Which.ErrorCode.Should().Be(MeshErrorCode.StateStoreFailed);
        Directory.Exists(NetmapPath).Should().BeTrue();
        var delete = async () => await store.DeleteAsync();
        (await delete.Should().ThrowAsync<MeshException>()).Which.ErrorCode.Should().Be(MeshErrorCode.StateStoreFailed);
    }

    [Fact]
    public async Task AnUnwritableDirectoryFailsTheSaveWithStateStoreFailed()
    {
        Directory.CreateDirectory(_directory);
        string notADirectory = Path.Combine(_directory, "file");
        await File.WriteAllTextAsync(notADirectory, "a file where the directory should be");
        var store = new FileNetmapStore(Path.Combine(notADirectory, "netmap.bin"));
        var save = async () => await store.SaveAsync(_identity, Netmap(1));
        var error = (await save.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.StateStoreFailed);
        error.Message.Should().Contain("cannot be written");
    }

    [Fact]
    public async Task DeleteRemovesTheFileAndLeftoverTemporaryFiles()
    {
        var store = new FileNetmapStore(NetmapPath);
        await store.DeleteAsync(); // nothing there, not even the directory: fine
        await store.SaveAsync(_identity, Netmap(5));
        string leftover = Path.Combine(Path.GetDirectoryName(NetmapPath)!, ".netmap.bin.00112233aabb.tmp");
        await File.WriteAllBytesAsync(leftover, [1, 2, 3]);
        (await store.LoadAsync(_identity))!.Sequence.Should().Be(5, "a leftover temporary file does not disturb loading");

        await store.DeleteAsync();
        File.Exists(NetmapPath).Should().BeFalse();
        File.Exists(leftover).Should().BeFalse();
        (await store.LoadAsync(_identity)).Should().BeNull();
        await store.DeleteAsync(); // again: fine
    }

    [Fact]
    public async Task ASaveRemovesTemporaryFilesACrashLeftBehind()
    {
        var store = new FileNetmapStore(NetmapPath);
        Directory.CreateDirectory(Path.GetDirectoryName(NetmapPath)!);
        for (int i = 0; i < 5; i++)
        {
            await File.WriteAllBytesAsync(Path.Combine(Path.GetDirectoryName(NetmapPath)!, $".netmap.bin.00000000000{i}.tmp"), [1]);
        }
        await store.SaveAsync(_identity, Netmap(9));
        Directory.GetFiles(Path.GetDirectoryName(NetmapPath)!).Should().Equal([NetmapPath]);
    }

    [Fact]
    public void APathThatNamesADirectoryIsRefused()
    {
        Directory.CreateDirectory(_directory);
        var act = () => new FileNetmapStore(_directory);
        act.Should().Throw<ArgumentException>();
        new FileNetmapStore(NetmapPath).ToString().Should().Contain(NetmapPath);
    }

    private static byte[] Flip(byte[] bytes, int index)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] ^= 0x01;
        return copy;
    }

    private static byte[] Replace(byte[] bytes, int index, byte value)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] = value;
        return copy;
    }
}
