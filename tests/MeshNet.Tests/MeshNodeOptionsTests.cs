using System.Net;
using MeshNet.Control;

namespace MeshNet.Tests;

[Trait("Category", "Unit")]
public sealed class MeshNodeOptionsTests
{
    private static MeshNodeOptions Valid() => new() { ControlUrl = new Uri("https://control.example.com") };

    public static TheoryData<string, Action<MeshNodeOptions>> InvalidOptions => new()
    {
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = null },
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = new Uri("/relative", UriKind.Relative) },
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = new Uri("ftp://control.example.com") },
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = new Uri("https://user:pw@control.example.com") },
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = new Uri("https://control.example.com/?a=b") },
        { nameof(MeshNodeOptions.ControlUrl), o => o.ControlUrl = new Uri("https://control.example.com/meshnet") },
        { nameof(MeshNodeOptions.AuthKey), o => o.AuthKey = "" },
        { nameof(MeshNodeOptions.AuthKey), o => o.AuthKey = "mnkey has space" },
        { nameof(MeshNodeOptions.Hostname), o => o.Hostname = "  " },
        { nameof(MeshNodeOptions.Hostname), o => o.Hostname = new string('a', 254) },
        { nameof(MeshNodeOptions.Tags), o => o.Tags = null! },
        { nameof(MeshNodeOptions.Tags), o => o.Tags = ["tag:ok", ""] },
        { nameof(MeshNodeOptions.Tags), o => o.Tags = ["tag: spaced"] },
        { nameof(MeshNodeOptions.ListenPort), o => o.ListenPort = -1 },
        { nameof(MeshNodeOptions.ListenPort), o => o.ListenPort = 65536 },
        { nameof(MeshNodeOptions.AdvertisedEndpoints), o => o.AdvertisedEndpoints = [new IPEndPoint(IPAddress.Any, 1)] },
        { nameof(MeshNodeOptions.AdvertisedEndpoints), o => o.AdvertisedEndpoints = [new IPEndPoint(IPAddress.Loopback, 0)] },
        { nameof(MeshNodeOptions.AdvertisedEndpoints), o => o.AdvertisedEndpoints = [.. Enumerable.Range(1, 33).Select(p => new IPEndPoint(IPAddress.Loopback, p))] },
        { nameof(MeshNodeOptions.TimeProvider), o => o.TimeProvider = null! },
        { nameof(MeshNodeOptions.StartTimeout), o => o.StartTimeout = TimeSpan.Zero },
        { nameof(MeshNodeOptions.StartTimeout), o => o.StartTimeout = TimeSpan.FromSeconds(-5) },
        { nameof(MeshNodeOptions.ControlReconnectMinDelay), o => o.ControlReconnectMinDelay = TimeSpan.Zero },
        { nameof(MeshNodeOptions.ControlReconnectMaxDelay), o => o.ControlReconnectMaxDelay = TimeSpan.FromMilliseconds(10) },
        { nameof(MeshNodeOptions.ControlKeepAliveTimeout), o => o.ControlKeepAliveTimeout = TimeSpan.FromMilliseconds(10) },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public async Task InvalidOptionsAreRefusedUpFrontNamingTheProperty(string property, Action<MeshNodeOptions> spoil)
    {
        var options = Valid();
        spoil(options);
        var act = () => MeshNode.StartAsync(options);
        var error = (await act.Should().ThrowAsync<ArgumentException>()).Which;
        error.ParamName.Should().Be(property);
        error.Message.Should().Contain($"MeshNodeOptions.{property}");
    }

    [Fact]
    public void DefaultsAreValid()
    {
        var options = Valid();
        options.Validate();
        options.StartTimeout.Should().Be(TimeSpan.FromSeconds(30));
        options.ControlKeepAliveTimeout.Should().Be(TimeSpan.FromMinutes(2));
        options.ListenPort.Should().Be(0);
        options.StateStore.Should().BeNull("null means a fresh in-memory store");
        options.TimeProvider.Should().BeSameAs(TimeProvider.System);
        options.StartTimeout = Timeout.InfiniteTimeSpan;
        options.Validate();
    }

    [Fact]
    public void AnInvalidAuthKeyIsNeverEchoed()
    {
        var options = Valid();
        options.AuthKey = "mnkey-secret value";
        var error = Assert.Throws<ArgumentException>(options.Validate);
        error.Message.Should().NotContain("secret");
        options.AuthKey = "mnkey-secret";
        options.ToString().Should().NotContain("mnkey-secret").And.Contain("AuthKey = set");
    }

    [Fact]
    public void TheSnapshotIsIndependentOfLaterChanges()
    {
        var tags = new List<string> { "tag:a", "tag:a", "tag:b" };
        var options = Valid();
        options.Tags = tags;
        var snapshot = options.Snapshot();
        tags.Add("tag:c");
        snapshot.Tags.Should().Equal("tag:a", "tag:b");
    }

    [Theory]
    [InlineData("http://example.com")]
    [InlineData("http://10.0.0.1:8080")]
    [InlineData("http://[2001:db8::1]")]
    [InlineData("http://localhost.example.com")]
    public async Task PlainHttpToAHostThatIsNotLoopbackIsInvalidConfiguration(string url)
    {
        var act = () => MeshNode.StartAsync(new MeshNodeOptions { ControlUrl = new Uri(url) });
        var error = (await act.Should().ThrowAsync<MeshException>()).Which;
        error.ErrorCode.Should().Be(MeshErrorCode.InvalidConfiguration);
        error.Message.Should().Contain("https");
    }

    [Theory]
    [InlineData("http://localhost:5000", true)]
    [InlineData("http://LOCALHOST.:5000", true)]
    [InlineData("http://node.localhost", true)]
    [InlineData("http://127.0.0.1:5000", true)]
    [InlineData("http://127.9.8.7", true)]
    [InlineData("http://[::1]:5000", true)]
    [InlineData("http://[::ffff:127.0.0.1]:5000", true)]
    [InlineData("http://192.168.1.1", false)]
    [InlineData("http://localhostx", false)]
    public void LoopbackRecognition(string url, bool loopback) =>
        ControlUrlPolicy.IsLoopback(new Uri(url)).Should().Be(loopback);

    [Fact]
    public void HttpsToAnyHostIsAccepted() =>
        ControlUrlPolicy.Check(new Uri("https://control.example.com"));
}
