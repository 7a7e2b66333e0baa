using MeshNet.Coordination.Storage;
using MeshNet.Coordination.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace MeshNet.Coordination.Tests.Unit;

[Trait("Category", "Unit")]
public sealed class ServiceRegistrationTests : IDisposable
{
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void InvalidOptionsFailWhenTheServiceIsAdded()
    {
        var services = new ServiceCollection();
        services.Invoking(s => s.AddMeshNetCoordination(options => options.DatabasePath = _directory.File("x.db")))
            .Should().Throw<ArgumentException>().Which.Message.Should().Contain("AdminToken");
    }

    [Fact]
    public void ARegisteredStoreIsUsedAndASecondAddIsRefused()
    {
        using var store = new SqliteCoordinationStore(_directory.File("custom.db"));
        var services = new ServiceCollection();
        services.AddSingleton<ICoordinationStore>(store);
        services.AddMeshNetCoordination(options => options.AdminToken = "0123456789abcdef");
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<ICoordinationStore>().Should().BeSameAs(store);
        services.Invoking(s => s.AddMeshNetCoordination(options => options.AdminToken = "0123456789abcdef"))
            .Should().Throw<InvalidOperationException>();
    }

    [Fact]
    public async Task AConnectionStringOpensASqliteStore()
    {
        var services = new ServiceCollection();
        services.AddMeshNetCoordination(options =>
        {
            options.ConnectionString = $"Data Source={_directory.File("by-string.db")}";
            options.AdminToken = "0123456789abcdef";
        });
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<ICoordinationStore>();
        store.Should().BeOfType<SqliteCoordinationStore>();
        (await store.InitializeAsync(default)).Should().BeGreaterThan(0);
        File.Exists(_directory.File("by-string.db")).Should().BeTrue();
    }
}
