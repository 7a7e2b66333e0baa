using System.Net;
using System.Text;
using MeshNet.Tests.Support;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Tests.State;

/// <summary>
/// The state file's version 2: the integrity tag catches edits that still parse, version 1 files
/// are read and upgraded, and the listen port survives a restart.
/// </summary>
[Trait("Category", "Unit")]
public sealed class StateFileIntegrityTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "meshnet-state-v2-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private string StatePath => Path.Combine(_directory, "state.json");

    private static MeshNodeIdentity Registered(int listenPort = 41641)
    {
        var identity = MeshNodeIdentity.Generate();
        identity.NodeId = 42;
        identity.Tailnet = "acme";
        identity.Addresses = [IPAddress.Parse("100.64.0.42"), IPAddress.Parse("fd7a:115c:a1e0::2a")];
        identity.ControlUrl = new Uri("https://control.example.com/");
        identity.ListenPort = listenPort;
        return identity;
    }

    [Fact]
    public async Task TheListenPortRoundTripsAndZeroIsOmitted()
    {
        var store = new FileStateStore(StatePath);
        using var identity = Registered(listenPort: 41641);
        await store.SaveAsync(identity);
        (await File.ReadAllTextAsync(StatePath)).Should().Contain("\"listenPort\": 41641");
        using (var loaded = await new FileStateStore(StatePath).LoadAsync())
        {
            loaded!.ListenPort.Should().Be(41641);
            loaded.NodeId.Should().Be(42);
        }

        identity.ListenPort = 0;
        await store.SaveAsync(identity);
        (await File.ReadAllTextAsync(StatePath)).Should().NotContain("listenPort");
        using var again = await store.LoadAsync();
        again!.ListenPort.Should().Be(0);
    }

    [Fact]
    public async Task TheIntegrityTagIsTheLastPropertyAndCoversTheDocumentBeforeIt()
    {
        using var identity = Registered();
        await new FileStateStore(StatePath).SaveAsync(identity);
        string json = await File.ReadAllTextAsync(StatePath);
        json.Should().Contain("\"version\": 2");
        int integrity = json.IndexOf(",\n  \"integrity\": \"", StringComparison.Ordinal);
        integrity.Should().BePositive();
        json[(integrity + 1)..].TrimEnd().Should().MatchRegex("^\\s*\"integrity\": \"[A-Za-z0-9+/]{43}=\"\\s*}$");
    }

    public static TheoryData<string, string> Edits => new()
    {
        { "\"nodeId\": 42", "\"nodeId\": 43" },
        { "\"tailnet\": \"acme\"", "\"tailnet\": \"evil\"" },
        { "\"100.64.0.42\"", "\"100.64.0.99\"" },
        { "\"listenPort\": 41641", "\"listenPort\": 41642" },
        { "\"controlUrl\": \"https://control.example.com/\"", "\"controlUrl\": \"https://evil.example.com/\"" },
        // Truncated, but what is left still parses: the registration removed.
        { ",\n  \"nodeId\": 42,\n  \"tailnet\": \"acme\"", "" },
        // A property slipped in before the tag, and one after it.
        { "\"integrity\"", "\"extra\": 1, \"integrity\"" },
        { "=\"\n}", "=\", \"extra\": 1\n}" },
        { "\"integrity\": \"", "\"other\": \"" },
    };

    [Theory]
    [MemberData(nameof(Edits))]
    public async Task AnEditedFileThatStillParsesIsSetAside(string original, string edited)
    {
        using var identity = Registered();
        await new FileStateStore(StatePath).SaveAsync(identity);
        string json = await File.ReadAllTextAsync(StatePath);
        json.Should().Contain(original);
        string tampered = json.Replace(original, edited, StringComparison.Ordinal);
        await File.WriteAllTextAsync(StatePath, tampered);
        var logs = new RecordingLoggerFactory();
        var store = new FileStateStore(StatePath, logs, new FakeTimeProvider(Now));

        (await store.LoadAsync()).Should().BeNull("the node starts as a new node rather than trusting an edited identity");

        string aside = StatePath + ".corrupt-20261127T120000Z";
        (await File.ReadAllTextAsync(aside)).Should().Be(tampered, "the file is kept as it was, for inspection");
        File.Exists(StatePath).Should().BeFalse();
        var warning = logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4151 && e.Level == LogLevel.Warning).Which;
        warning.Message.Should().Contain(StatePath).And.Contain(aside);
        logs.AllText.Should().NotContain(identity.PrivateKey.ExportBase64());
    }

    [Fact]
    public async Task AFlippedBitInTheKeyIsCaught()
    {
        using var identity = Registered();
        await new FileStateStore(StatePath).SaveAsync(identity);
        var bytes = await File.ReadAllBytesAsync(StatePath);
        string json = Encoding.UTF8.GetString(bytes);
        int key = json.IndexOf("\"privateKey\": \"", StringComparison.Ordinal) + "\"privateKey\": \"".Length;
        // 'A' <-> 'B' changes one bit of the base64 text and so of the key.
        bytes[key + 5] = (byte)(bytes[key + 5] == 'A' ? 'B' : 'A');
        await File.WriteAllBytesAsync(StatePath, bytes);
        var logs = new RecordingLoggerFactory();

        (await new FileStateStore(StatePath, logs, new FakeTimeProvider(Now)).LoadAsync()).Should().BeNull();
        logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4151).Which.Message.Should().Contain("integrity");
    }

    [Fact]
    public async Task AVersion2FileWithoutItsTagIsSetAside()
    {
        using var identity = Registered();
        Directory.CreateDirectory(_directory);
        await File.WriteAllTextAsync(StatePath, V1Document(identity).Replace("\"version\": 1", "\"version\": 2"));
        var logs = new RecordingLoggerFactory();
        (await new FileStateStore(StatePath, logs, new FakeTimeProvider(Now)).LoadAsync()).Should().BeNull();
        logs.Entries.Should().ContainSingle(e => e.EventId.Id == 4151).Which.Message.Should().Contain("\"integrity\" is missing");
    }

    [Fact]
    public async Task AVersion1FileIsReadAndRewrittenAsVersion2OnTheNextSave()
    {
        using var identity = Registered(listenPort: 0);
        Directory.CreateDirectory(_directory);
        await File.WriteAllTextAsync(StatePath, V1Document(identity));
        var store = new FileStateStore(StatePath);

        using var loaded = await store.LoadAsync();
        loaded.Should().NotBeNull();
        loaded!.PrivateKey.ExportBase64().Should().Be(identity.PrivateKey.ExportBase64());
        loaded.NodeId.Should().Be(42);
        loaded.Tailnet.Should().Be("acme");
        loaded.Addresses.Should().Equal(identity.Addresses);
        loaded.ControlUrl.Should().Be(identity.ControlUrl);
        loaded.ListenPort.Should().Be(0);

        loaded.ListenPort = 50000;
        await store.SaveAsync(loaded);
        string rewritten = await File.ReadAllTextAsync(StatePath);
        rewritten.Should().Contain("\"version\": 2").And.Contain("\"integrity\"").And.Contain("\"listenPort\": 50000");
        using var reloaded = await store.LoadAsync();
        reloaded!.ListenPort.Should().Be(50000);
        reloaded.NodeId.Should().Be(42);
    }

    [Fact]
    public async Task AFileOfAHigherVersionIsStillRefusedAndLeftUntouched()
    {
        using var identity = Registered();
        Directory.CreateDirectory(_directory);
        string newer = V1Document(identity).Replace("\"version\": 1", "\"version\": 3");
        await File.WriteAllTextAsync(StatePath, newer);
        var act = async () => await new FileStateStore(StatePath).LoadAsync();
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.StateStoreFailed);
        error.Message.Should().Contain("version 3").And.NotContain(identity.PrivateKey.ExportBase64());
        (await File.ReadAllTextAsync(StatePath)).Should().Be(newer);
    }

    [Fact]
    public async Task ASaveRemovesTemporaryFilesACrashLeftBehind()
    {
        using var identity = Registered();
        Directory.CreateDirectory(_directory);
        string leftover = Path.Combine(_directory, ".state.json.0123456789ab.tmp");
        string unrelated = Path.Combine(_directory, ".state.json.not-ours.tmp");
        await File.WriteAllTextAsync(leftover, "{ half");
        await File.WriteAllTextAsync(unrelated, "someone else's");

        await new FileStateStore(StatePath).SaveAsync(identity);

        File.Exists(leftover).Should().BeFalse("a temporary file of this store present at a save was left by a crash");
        File.Exists(unrelated).Should().BeTrue("only names the store itself makes are removed");
    }

    [Fact]
    public async Task ASetAsideFileIsNeverOverwritten()
    {
        Directory.CreateDirectory(_directory);
        var store = new FileStateStore(StatePath, null, new FakeTimeProvider(Now));
        string aside = StatePath + ".corrupt-20261127T120000Z";
        for (int i = 1; i <= 3; i++)
        {
            await File.WriteAllTextAsync(StatePath, $"bad {i}");
            (await store.LoadAsync()).Should().BeNull();
        }
        (await File.ReadAllTextAsync(aside)).Should().Be("bad 1");
        (await File.ReadAllTextAsync(aside + "-2")).Should().Be("bad 2");
        (await File.ReadAllTextAsync(aside + "-3")).Should().Be("bad 3");
    }

    /// <summary>The file MeshNet 1.x wrote for <paramref name="identity"/>.</summary>
    private static string V1Document(MeshNodeIdentity identity) => $$"""
        {
          "format": "meshnet-node-state",
          "version": 1,
          "privateKey": "{{identity.PrivateKey.ExportBase64()}}",
          "nodeId": {{identity.NodeId}},
          "tailnet": "{{identity.Tailnet}}",
          "addresses": [{{string.Join(", ", identity.Addresses.Select(a => $"\"{a}\""))}}],
          "controlUrl": "{{identity.ControlUrl!.AbsoluteUri}}"
        }
        """;
}
