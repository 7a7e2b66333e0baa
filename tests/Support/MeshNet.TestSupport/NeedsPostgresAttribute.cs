namespace MeshNet.TestSupport;

/// <summary>Marks a test class whose <see cref="ContractFactAttribute"/> facts need PostgreSQL.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NeedsPostgresAttribute : Attribute;
