namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class OptionsTests
{
    private static CoordinationOptions Valid() => new() { DatabasePath = "/tmp/x.db", AdminToken = "0123456789abcdef" };

    [Fact]
    public void DefaultsAreTheDocumentedOnes()
    {
        var options = new CoordinationOptions();
        options.EphemeralNodeTimeout.Should().Be(TimeSpan.FromMinutes(5));
        options.KeepAliveInterval.Should().Be(TimeSpan.FromSeconds(50));
        options.MapSessionRetention.Should().Be(TimeSpan.FromMinutes(2));
        options.MaxClockSkew.Should().Be(TimeSpan.FromMinutes(2));
        options.DefaultNodeKeyLifetime.Should().Be(TimeSpan.FromDays(180));
        Valid().Invoking(o => o.Validate(false)).Should().NotThrow();
    }

    public static TheoryData<Action<CoordinationOptions>, string> Invalid => new()
    {
        { o => o.AdminToken = null, nameof(CoordinationOptions.AdminToken) },
        { o => o.AdminToken = "short", nameof(CoordinationOptions.AdminToken) },
        { o => o.DatabasePath = null, nameof(CoordinationOptions.DatabasePath) },
        { o => o.ConnectionString = "Data Source=x.db", nameof(CoordinationOptions.DatabasePath) },
        { o => o.EphemeralNodeTimeout = TimeSpan.Zero, nameof(CoordinationOptions.EphemeralNodeTimeout) },
        { o => o.KeepAliveInterval = TimeSpan.FromMilliseconds(1), nameof(CoordinationOptions.KeepAliveInterval) },
        { o => o.MapSessionRetention = TimeSpan.FromSeconds(-1), nameof(CoordinationOptions.MapSessionRetention) },
        { o => o.MapReplayBufferSize = 0, nameof(CoordinationOptions.MapReplayBufferSize) },
        { o => o.MapSendQueueSize = 0, nameof(CoordinationOptions.MapSendQueueSize) },
        { o => o.MaxClockSkew = TimeSpan.Zero, nameof(CoordinationOptions.MaxClockSkew) },
        { o => o.DefaultNodeKeyLifetime = TimeSpan.Zero, nameof(CoordinationOptions.DefaultNodeKeyLifetime) },
        { o => o.DomainSuffix = "Not A Domain", nameof(CoordinationOptions.DomainSuffix) },
        { o => o.MaxRequestSize = 10, nameof(CoordinationOptions.MaxRequestSize) },
        { o => o.NonceCacheCapacity = 0, nameof(CoordinationOptions.NonceCacheCapacity) },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void InvalidValuesAreRefusedNamingTheProperty(Action<CoordinationOptions> change, string property)
    {
        var options = Valid();
        change(options);
        options.Invoking(o => o.Validate(false)).Should().Throw<ArgumentException>()
            .Which.Message.Should().Contain($"CoordinationOptions.{property}");
    }

    [Fact]
    public void ARegisteredStoreReplacesTheDatabasePath()
    {
        var options = Valid();
        options.DatabasePath = null;
        options.Invoking(o => o.Validate(storeRegistered: true)).Should().NotThrow();
    }

    [Fact]
    public void EmbeddedServerRefusesNonLoopbackUrls()
    {
        foreach (var url in new[] { "http://0.0.0.0:0", "https://127.0.0.1:0", "http://example.com:80", "http://10.0.0.1:5000" })
        {
            new EmbeddedCoordinationOptions { Url = url }.Invoking(o => o.ValidateUrl()).Should().Throw<ArgumentException>()
                .Which.Message.Should().Contain("EmbeddedCoordinationOptions.Url");
        }
        new EmbeddedCoordinationOptions { Url = "http://[::1]:0" }.ValidateUrl().Should().NotBeNull();
        new EmbeddedCoordinationOptions { Url = "http://localhost:5000" }.ValidateUrl().Should().NotBeNull();
    }
}
