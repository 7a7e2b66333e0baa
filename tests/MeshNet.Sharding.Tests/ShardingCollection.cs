namespace MeshNet.Sharding.Tests;

/// <summary>
/// The sharding tests share one throwaway PostgreSQL cluster (each test makes its own database)
/// and run one at a time: each starts several server processes and many nodes.
/// </summary>
[CollectionDefinition(PostgresFixture.Collection)]
public sealed class ShardingCollection : ICollectionFixture<PostgresFixture>;
