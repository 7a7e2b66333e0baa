using MeshNet.Coordination.Policy;

namespace MeshNet.Coordination.Validation;

/// <summary>
/// Builds the domain failures the service's logic throws (<see cref="CoordinationException"/>):
/// a code and a message that says what is wrong, never echoing secrets. <c>Services/</c> turns
/// them into gRPC statuses with the <c>meshnet-error</c> trailer.
/// </summary>
internal static class Failures
{
    public static CoordinationException Create(CoordinationErrorCode code, string message) => new(code, message);

    /// <summary>A malformed, out-of-range or oversized field, naming it.</summary>
    public static CoordinationException Invalid(string message) => new(CoordinationErrorCode.InvalidRequest, message);

    /// <summary>The node is not registered (or no longer).</summary>
    public static CoordinationException NotRegistered(string message) => new(CoordinationErrorCode.NodeNotRegistered, message);

    /// <summary>A tailnet, node or auth key that does not exist.</summary>
    public static CoordinationException NotFound(string message) => new(CoordinationErrorCode.NotFound, message);

    /// <summary>The node's key has expired: only a new key registered with a valid auth key brings it back.</summary>
    public static CoordinationException NodeKeyExpired(string? detail = null) =>
        new(CoordinationErrorCode.NodeKeyExpired,
            "node key expired: re-authenticate with a valid auth key (Register a new key with old_node_key, its proof and auth_key) to come back"
            + (detail is null ? "" : $"; {detail}"));

    /// <summary>A transient refusal: retry (possibly elsewhere).</summary>
    public static CoordinationException Unavailable(string message) => new(CoordinationErrorCode.Unavailable, message);

    /// <summary>
    /// A policy that does not parse or validate, or whose tests fail: "line L, column C: problem",
    /// with the position.
    /// </summary>
    public static CoordinationException Policy(PolicyException exception) =>
        new(exception.IsTestFailure ? CoordinationErrorCode.PolicyTestFailed : CoordinationErrorCode.InvalidPolicy, exception.Message)
        {
            PolicyLine = exception.Line,
            PolicyColumn = exception.Column,
        };

    /// <summary>Another server serves the tailnet: go there.</summary>
    public static CoordinationException NotOwner(string tailnet, string ownerUrl, ulong epoch) =>
        new(CoordinationErrorCode.NotOwner, $"tailnet '{tailnet}' is served by {ownerUrl}")
        {
            OwnerUrl = ownerUrl,
            OwnerEpoch = epoch,
        };

    /// <summary>Nobody serves the tailnet right now: retry after <paramref name="retryAfter"/>.</summary>
    public static CoordinationException NoOwner(string tailnet, TimeSpan retryAfter, string why) =>
        new(CoordinationErrorCode.NoOwner, $"no server serves tailnet '{tailnet}' right now ({why}); retry in {retryAfter.TotalMilliseconds:0} ms")
        {
            RetryAfter = retryAfter,
        };
}
