using Xunit.Abstractions;
using Xunit.Sdk;

namespace MeshNet.TestSupport;

/// <summary>
/// Discovers <see cref="ContractFactAttribute"/> facts: one test case per concrete class, skipped
/// when that class needs PostgreSQL and <see cref="PostgresCluster.SkipReason"/> gives a reason.
/// </summary>
public sealed class ContractFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    /// <inheritdoc />
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        ArgumentNullException.ThrowIfNull(discoveryOptions);
        ArgumentNullException.ThrowIfNull(testMethod);
        var display = discoveryOptions.MethodDisplayOrDefault();
        var displayOptions = discoveryOptions.MethodDisplayOptionsOrDefault();
        if (testMethod.TestClass.Class.GetCustomAttributes(typeof(NeedsPostgresAttribute)).Any() && PostgresCluster.SkipReason() is { } reason)
        {
            return [new XunitSkippedDataRowTestCase(diagnosticMessageSink, display, displayOptions, testMethod, reason)];
        }
        return [new XunitTestCase(diagnosticMessageSink, display, displayOptions, testMethod)];
    }
}
