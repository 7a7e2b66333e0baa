namespace MeshNet.Coordination.Policy;

/// <summary>One expectation of a policy test: a destination principal and port, and where it was written.</summary>
internal sealed record PolicyExpectation(string Text, PolicySubject Destination, uint Port, int Line, int Column);

/// <summary>A test of the policy: what <see cref="Source"/> may and may not reach. Immutable.</summary>
internal sealed record PolicyTest(string SourceText, PolicySubject Source, uint Protocol, string ProtocolText,
    IReadOnlyList<PolicyExpectation> Accept, IReadOnlyList<PolicyExpectation> Deny);
