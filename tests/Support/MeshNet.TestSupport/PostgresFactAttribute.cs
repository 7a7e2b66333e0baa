using Xunit;

namespace MeshNet.TestSupport;

/// <summary>
/// A fact that needs a PostgreSQL server (<see cref="PostgresCluster"/>): skipped with the reason
/// when PostgreSQL is missing, unless the environment variable <c>CI</c> is <c>true</c>. Then it
/// runs and fails, because <see cref="PostgresCluster.StartAsync"/> throws a
/// <see cref="PostgresUnavailableException"/> naming what is missing: CI must never pass by
/// skipping the PostgreSQL tests.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class PostgresFactAttribute : FactAttribute
{
    /// <summary>Creates the attribute, skipping the test when <see cref="PostgresCluster.SkipReason"/> says so.</summary>
    public PostgresFactAttribute()
    {
        if (PostgresCluster.SkipReason() is { } reason)
        {
            Skip = reason;
        }
    }
}
