using Xunit;

namespace MeshNet.TestSupport;

/// <summary>
/// A fact that needs a PostgreSQL server (<see cref="PostgresCluster"/>): skipped with the reason
/// when PostgreSQL is missing, unless the environment variable <c>CI</c> is <c>true</c>. Then it
/// runs and fails, because <see cref="PostgresCluster.StartAsync"/> throws a
/// <see cref="PostgresUnavailableException"/> naming what is missing: CI must never pass by
/// skipping the PostgreSQL tests. With <see cref="NeedsIptables"/>, root and the <c>iptables</c>
/// command are prerequisites too (same rule: skipped outside CI, failing in it).
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

    /// <summary>The test also adds firewall rules (<see cref="LoopbackFirewallRule"/>): it needs root and iptables.</summary>
    public bool NeedsIptables
    {
        get => field;
        set
        {
            field = value;
            if (value && Skip is null && !PostgresCluster.IsCi && LoopbackFirewallRule.MissingPrerequisite() is { } missing)
            {
                Skip = $"{missing}: the test adds iptables rules (as root: apt-get install iptables). With CI=true it fails instead of skipping.";
            }
        }
    }
}
