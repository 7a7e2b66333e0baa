namespace MeshNet.Protocol;

/// <summary>
/// Machine-readable reasons the coordination service attaches to failed calls, in the
/// <see cref="TrailerKey"/> trailer (the status message carries the human-readable text).
/// Clients map them to their own error codes instead of parsing messages.
/// </summary>
public static class ControlErrors
{
    /// <summary>The trailer that carries one of the reasons below.</summary>
    public const string TrailerKey = "meshnet-error";

    /// <summary>A new node registered without an auth key.</summary>
    public const string AuthKeyRequired = "auth-key-required";

    /// <summary>The auth key is not known (or malformed).</summary>
    public const string AuthKeyUnknown = "auth-key-unknown";

    /// <summary>The auth key's lifetime is over.</summary>
    public const string AuthKeyExpired = "auth-key-expired";

    /// <summary>A one-off auth key was already used.</summary>
    public const string AuthKeyUsedUp = "auth-key-used-up";

    /// <summary>The auth key was revoked by an administrator.</summary>
    public const string AuthKeyRevoked = "auth-key-revoked";

    /// <summary>The node asked for tags it may not have.</summary>
    public const string TagsNotPermitted = "tags-not-permitted";

    /// <summary>The node's key has expired: it must register a new key with a valid auth key to come back.</summary>
    public const string NodeKeyExpired = "node-key-expired";

    /// <summary>The node is not registered (register first).</summary>
    public const string NodeNotRegistered = "node-not-registered";

    /// <summary>The proof of key is missing, malformed or wrong.</summary>
    public const string BadProof = "bad-proof";

    /// <summary>The call's timestamp is too far from the server's clock.</summary>
    public const string StaleTimestamp = "stale-timestamp";

    /// <summary>The call's nonce was seen before: a replay.</summary>
    public const string Replayed = "replayed";

    /// <summary>Plain HTTP/2 from a non-loopback address (TLS is required).</summary>
    public const string TlsRequired = "tls-required";

    /// <summary>A field is malformed, out of range or too large.</summary>
    public const string InvalidRequest = "invalid-request";

    /// <summary>An ACL policy that does not parse or validate (see <see cref="PolicyLineTrailer"/>).</summary>
    public const string InvalidPolicy = "invalid-policy";

    /// <summary>An ACL policy whose own tests fail; it was not saved.</summary>
    public const string PolicyTestFailed = "policy-test-failed";

    /// <summary>The trailer with the 1-based line of a policy error.</summary>
    public const string PolicyLineTrailer = "meshnet-policy-line";

    /// <summary>The trailer with the 1-based column of a policy error.</summary>
    public const string PolicyColumnTrailer = "meshnet-policy-column";

    /// <summary>
    /// This server does not serve the node's tailnet: another one does, named by
    /// <see cref="RedirectTrailer"/> (Unavailable). Follow it at once.
    /// </summary>
    public const string NotOwner = "not-owner";

    /// <summary>
    /// No server serves the tailnet right now (its owner failed and a standby is taking it over,
    /// or it is moving): retry after <see cref="RetryAfterTrailer"/> (Unavailable).
    /// </summary>
    public const string NoOwner = "no-owner";

    /// <summary>The tailnet is quarantined after crashing servers: nobody serves it until an administrator releases it.</summary>
    public const string Quarantined = "tailnet-quarantined";

    /// <summary>
    /// This server cannot reach the coordination store (Unavailable): try another server, and pass
    /// over this one for a while.
    /// </summary>
    public const string StoreUnreachable = "store-unreachable";

    /// <summary>The tailnet exceeded one of its limits (changes per second, streams): retry after <see cref="RetryAfterTrailer"/>.</summary>
    public const string RateLimited = "rate-limited";

    /// <summary>The trailer with the URL of the server that serves the tailnet.</summary>
    public const string RedirectTrailer = "meshnet-redirect";

    /// <summary>The trailer with the epoch of the owner's lease (decimal).</summary>
    public const string EpochTrailer = "meshnet-epoch";

    /// <summary>The trailer with how long to wait before retrying, in milliseconds (decimal).</summary>
    public const string RetryAfterTrailer = "meshnet-retry-after-ms";

    /// <summary>
    /// The request header naming the caller's tailnet (nodes send it once registered), so that a
    /// load balancer can route by tailnet. Servers do not trust it: they look the node up.
    /// </summary>
    public const string TailnetHeader = "meshnet-tailnet";

    /// <summary>
    /// The request header with an idempotency key (at most 128 characters): a write retried with the
    /// same key (after a lost answer, a redirect, a handover) is applied once.
    /// </summary>
    public const string IdempotencyKeyHeader = "meshnet-idempotency-key";
}
