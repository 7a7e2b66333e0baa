using Xunit;

namespace MeshNet.TestSupport;

/// <summary>
/// One <see cref="PostgresCluster"/> shared by the tests of an xunit collection (starting one
/// takes a second or two); each test makes its own database with <see cref="CreateDatabaseAsync"/>.
/// xunit wants the collection definition in the test assembly itself:
/// <code>
/// [CollectionDefinition(PostgresFixture.Collection)]
/// public sealed class PostgresCollection : ICollectionFixture&lt;PostgresFixture&gt;;
/// </code>
/// </summary>
/// <remarks>
/// When PostgreSQL is missing and <see cref="PostgresCluster.SkipReason"/> says to skip, no
/// cluster is started, and <see cref="Cluster"/> throws with that reason (a test that is not a
/// <see cref="PostgresFactAttribute"/> fails with it). With <c>CI=true</c> a missing PostgreSQL
/// fails the fixture itself, and so every test of the collection.
/// </remarks>
public sealed class PostgresFixture : IAsyncLifetime
{
    /// <summary>The name of the collection of tests that share the cluster.</summary>
    public const string Collection = "PostgreSQL";

    private PostgresCluster? _cluster;
    private string? _skipReason;

    /// <summary>The shared cluster.</summary>
    /// <exception cref="PostgresUnavailableException">PostgreSQL is missing here.</exception>
    public PostgresCluster Cluster => _cluster ?? throw new PostgresUnavailableException(_skipReason ?? "The PostgreSQL fixture was not initialized.");

    /// <summary>Creates an empty database on the shared cluster and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync() => Cluster.CreateDatabaseAsync();

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        TestHostThreadPool.Reserve();
        _skipReason = PostgresCluster.SkipReason();
        if (_skipReason is null)
        {
            _cluster = await PostgresCluster.StartAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
        }
    }
}
