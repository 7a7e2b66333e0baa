using MeshNet.TestSupport;

namespace MeshNet.Coordination.Tests.Infrastructure;

/// <summary>The tests that share one throwaway PostgreSQL cluster (each makes its own database).</summary>
[CollectionDefinition(PostgresFixture.Collection)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>;
