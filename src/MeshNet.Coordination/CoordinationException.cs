namespace MeshNet.Coordination;

/// <summary>
/// A coordination operation failed for a reason the caller can act on
/// (<see cref="ErrorCode"/>). The message says what is wrong and never carries a secret. Thrown
/// by <see cref="EmbeddedCoordinationServer"/>'s methods; the gRPC services turn it into a
/// status with the <c>meshnet-error</c> trailer.
/// </summary>
public sealed class CoordinationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CoordinationException(CoordinationErrorCode errorCode, string message) : base(message) => ErrorCode = errorCode;

    /// <summary>Creates the exception with its cause.</summary>
    public CoordinationException(CoordinationErrorCode errorCode, string message, Exception innerException) : base(message, innerException) =>
        ErrorCode = errorCode;

    /// <summary>Why it failed.</summary>
    public CoordinationErrorCode ErrorCode { get; }

    /// <summary>For <see cref="CoordinationErrorCode.NotOwner"/>: the URL of the server that serves the tailnet.</summary>
    public string? OwnerUrl { get; init; }

    /// <summary>For <see cref="CoordinationErrorCode.NotOwner"/>: the epoch of the owner's lease.</summary>
    public ulong OwnerEpoch { get; init; }

    /// <summary>For <see cref="CoordinationErrorCode.NoOwner"/> and <see cref="CoordinationErrorCode.RateLimited"/>: when to retry.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>For policy errors: the 1-based line of the problem.</summary>
    public int PolicyLine { get; init; }

    /// <summary>For policy errors: the 1-based column of the problem.</summary>
    public int PolicyColumn { get; init; }
}
