namespace MeshNet.TestSupport.Interop;

/// <summary>A prerequisite of an interop test is missing (see <see cref="Prerequisites"/>).</summary>
public sealed class InteropPrerequisiteException(string message) : Exception(message);
