using System.Net;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.State;

[Trait("Category", "Unit")]
public sealed class StateStoreTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "meshnet-state-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private string StatePath => Path.Combine(_directory, "node", "state.json");

    private static MeshNodeIdentity Registered()
    {
        var identity = MeshNodeIdentity.Generate();
        identity.NodeId = 42;
        identity.Tailnet = "acme";
        identity.Addresses = [IPAddress.Parse("100.64.0.42"), IPAddress.Parse("fd7a:115c:a1e0::2a")];
        identity.ControlUrl = new Uri("https://control.example.com");
        return identity;
    }

    private static string Secret(MeshNodeIdentity identity) => identity.PrivateKey.ExportBase64();

    private static void ShouldMatch(MeshNodeIdentity? loaded, MeshNodeIdentity saved)
    {
        loaded.Should().NotBeNull();
        loaded!.PublicKey.Should().Be(saved.PublicKey);
        Secret(loaded).Should().Be(Secret(saved));
        loaded.NodeId.Should().Be(saved.NodeId);
        loaded.Tailnet.Should().Be(saved.Tailnet);
        loaded.Addresses.Should().Equal(saved.Addresses);
        loaded.ControlUrl.Should().Be(saved.ControlUrl);
        loaded.IsRegistered.Should().Be(saved.IsRegistered);
    }

    [Fact]
    public async Task InMemoryStoreRoundTripsCopies()
    {
        using var store = new InMemoryStateStore();
        (await store.LoadAsync()).Should().BeNull();
        using var saved = Registered();
        await store.SaveAsync(saved);
        using (var loaded = await store.LoadAsync())
        {
            ShouldMatch(loaded, saved);
            loaded.Should().NotBeSameAs(saved);
        }
        // Disposing what was saved or loaded leaves the store's own copy intact.
        saved.Dispose();
        using var again = await store.LoadAsync();
        again!.NodeId.Should().Be(42);
        again.PrivateKey.ExportBase64().Should().NotBeEmpty();
    }

    [Fact]
    public async Task FileStoreRoundTripsAndCreatesTheDirectory()
    {
        var store = new FileStateStore(StatePath);
        (await store.LoadAsync()).Should().BeNull("there is no file yet");
        using var saved = Registered();
        await store.SaveAsync(saved);
        using var loaded = await new FileStateStore(StatePath).LoadAsync();
        ShouldMatch(loaded, saved);

        using var unregistered = MeshNodeIdentity.Generate();
        await store.SaveAsync(unregistered);
        using var second = await store.LoadAsync();
        ShouldMatch(second, unregistered);
        second!.IsRegistered.Should().BeFalse();
    }

    [Fact]
    public async Task FileIsCreatedOwnerOnlyAndReplacedAtomically()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, "old");
        File.SetUnixFileMode(StatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var store = new FileStateStore(StatePath);
        using var identity = Registered();
        await store.SaveAsync(identity);

        // A new file took the old one's place (a rename, not an in-place rewrite): its mode is 0600.
        File.GetUnixFileMode(StatePath).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Directory.GetFiles(Path.GetDirectoryName(StatePath)!).Should().Equal([StatePath], "no temporary file is left behind");
        (await File.ReadAllTextAsync(StatePath)).Should().Contain("\"format\": \"meshnet-node-state\"").And.Contain("\"version\": 2");
    }

    [Fact]
    public async Task NewDirectoryIsOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        using var identity = Registered();
        await new FileStateStore(StatePath).SaveAsync(identity);
        File.GetUnixFileMode(Path.GetDirectoryName(StatePath)!).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [Fact]
    public async Task ALeftoverTemporaryFileDoesNotDisturbLoading()
    {
        var store = new FileStateStore(StatePath);
        using var identity = Registered();
        await store.SaveAsync(identity);
        // A crash between writing the temporary file and renaming it leaves this behind.
        await File.WriteAllTextAsync(Path.Combine(Path.GetDirectoryName(StatePath)!, ".state.json.0123456789ab.tmp"), "{ half");
        using var loaded = await store.LoadAsync();
        ShouldMatch(loaded, identity);
    }

    public static TheoryData<string> CorruptContents => new()
    {
        "",
        "not json at all",
        "{ \"format\": \"meshnet-node-state\", \"version\": 1, ",
        "[1, 2, 3]",
        "{ \"format\": \"something-else\", \"version\": 1, \"privateKey\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }",
        "{ \"format\": \"meshnet-node-state\", \"version\": 1, \"privateKey\": \"c2hvcnQ=\" }",
        "{ \"format\": \"meshnet-node-state\", \"version\": 1 }",
        "{ \"format\": \"meshnet-node-state\", \"version\": 1, \"privateKey\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\", \"addresses\": [\"not an address\"] }",
        "{ \"format\": \"meshnet-node-state\", \"version\": 0, \"privateKey\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }",
    };

    [Theory]
    [MemberData(nameof(CorruptContents))]
    public async Task ACorruptFileIsMovedAsideWithATimestampAndAWarning(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, content);
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero));
        var logs = new RecordingLoggerFactory();
        var store = new FileStateStore(StatePath, logs, time);

        (await store.LoadAsync()).Should().BeNull("the node starts with a new identity");

        File.Exists(StatePath).Should().BeFalse();
        string aside = StatePath + ".corrupt-20250304T050607Z";
        File.Exists(aside).Should().BeTrue();
        (await File.ReadAllTextAsync(aside)).Should().Be(content, "the corrupt file is kept, untouched, for inspection");
        logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4151 && e.Level == Microsoft.Extensions.Logging.LogLevel.Warning)
            .Which.Message.Should().Contain(aside);

        // A second corrupt file in the same second gets a distinct name.
        await File.WriteAllTextAsync(StatePath, "again");
        (await store.LoadAsync()).Should().BeNull();
        File.Exists(aside + "-2").Should().BeTrue();
    }

    [Fact]
    public async Task AFileFromANewerVersionIsRefusedAndLeftAlone()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        const string Newer = "{ \"format\": \"meshnet-node-state\", \"version\": 7, \"privateKey\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }";
        await File.WriteAllTextAsync(StatePath, Newer);
        var act = async () => await new FileStateStore(StatePath).LoadAsync();
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.StateStoreFailed);
        error.Message.Should().Contain("newer version").And.Contain("version 7");
        (await File.ReadAllTextAsync(StatePath)).Should().Be(Newer);
    }

    [Fact]
    public async Task UnknownPropertiesOfALaterMinorChangeAreIgnored()
    {
        using var identity = Registered();
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        // A version 1 document (no integrity check) with properties this version does not know.
        await File.WriteAllTextAsync(StatePath, $$"""
            { "format": "meshnet-node-state", "version": 1, "netmapCache": { "peers": [1, 2] }, "integrity": "abc",
              "privateKey": "{{Secret(identity)}}", "nodeId": 42, "tailnet": "acme",
              "addresses": ["100.64.0.42", "fd7a:115c:a1e0::2a"], "controlUrl": "https://control.example.com/" }
            """);
        using var loaded = await new FileStateStore(StatePath).LoadAsync();
        ShouldMatch(loaded, identity);
    }

    [Fact]
    public async Task ThePrivateKeyNeverAppearsInToStringLogsOrErrors()
    {
        var logs = new RecordingLoggerFactory();
        using var identity = Registered();
        string secret = Secret(identity);
        var store = new FileStateStore(StatePath, logs);
        await store.SaveAsync(identity);

        identity.ToString().Should().NotContain(secret).And.Contain(identity.PublicKey.ToShortString());
        store.ToString().Should().NotContain(secret);
        new InMemoryStateStore().ToString().Should().NotContain(secret);

        // A corrupt file that still holds the key: neither the warning nor anything else quotes it.
        string json = await File.ReadAllTextAsync(StatePath);
        await File.WriteAllTextAsync(StatePath, json.Replace("\"version\": 2,", "\"version\": \"one\","));
        (await store.LoadAsync()).Should().BeNull();
        logs.AllText.Should().NotContain(secret);

        // An unreadable path: the error names the path, not the content.
        Directory.CreateDirectory(Path.Combine(_directory, "dir.json"));
        var act = () => new FileStateStore(Path.Combine(_directory, "dir.json"));
        act.Should().Throw<ArgumentException>();
    }

    [Fact]
    public async Task LooseFilePermissionsAreWarnedAbout()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        var logs = new RecordingLoggerFactory();
        var store = new FileStateStore(StatePath, logs);
        using var identity = Registered();
        await store.SaveAsync(identity);
        File.SetUnixFileMode(StatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        using var loaded = await store.LoadAsync();
        loaded.Should().NotBeNull();
        logs.Entries.Should().Contain(e => e.EventId.Id == 4152);
    }

    [Fact]
    public void IdentityCloneIsDeepAndDisposingZeroesOnlyItsOwnKey()
    {
        using var identity = Registered();
        var clone = identity.Clone();
        clone.Dispose();
        identity.PrivateKey.ExportBase64().Should().NotBeEmpty();
        var act = () => clone.PrivateKey.ExportBase64();
        act.Should().Throw<ObjectDisposedException>();
    }
}
