namespace MeshNet;

/// <summary>
/// The error a <see cref="MeshNode"/> reports: why the node could not start or a call failed,
/// with a machine-readable <see cref="ErrorCode"/>. Never carries key material or the auth key.
/// </summary>
/// <remarks>
/// Stream operations on a <see cref="MeshConnection"/> keep the <see cref="IOException"/>
/// contract of <see cref="System.Net.Sockets.NetworkStream"/> (an <see cref="IOException"/>
/// wrapping a <see cref="System.Net.Sockets.SocketException"/>); the node's own operations
/// (start, dial, listen) throw this type. Cancellation through the caller's token is always an
/// <see cref="OperationCanceledException"/>.
/// </remarks>
public sealed class MeshException : IOException
{
    /// <summary>Creates an exception with a code and a message.</summary>
    public MeshException(MeshErrorCode errorCode, string message)
        : base(message)
    {
        ErrorCode = errorCode;
    }

    /// <summary>Creates an exception with a code, a message and the failure that caused it.</summary>
    public MeshException(MeshErrorCode errorCode, string message, Exception? innerException)
        : base(message, innerException)
    {
        ErrorCode = errorCode;
    }

    /// <summary>Why the operation failed.</summary>
    public MeshErrorCode ErrorCode { get; }
}
