using Xunit;
using Xunit.Sdk;

namespace MeshNet.TestSupport;

/// <summary>
/// A fact declared by a contract test base class and run by each concrete class: skipped, as
/// <see cref="PostgresFactAttribute"/> skips, when the concrete class is marked
/// <see cref="NeedsPostgresAttribute"/> and PostgreSQL is missing (with <c>CI=true</c> it runs, and
/// fails, instead).
/// </summary>
[XunitTestCaseDiscoverer("MeshNet.TestSupport.ContractFactDiscoverer", "MeshNet.TestSupport")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ContractFactAttribute : FactAttribute;
