namespace MeshNet.Userspace.Conn;

// STUB: to be implemented (helper "binds").
/// <summary>Stub.</summary>
public sealed class UdpSocketBind : IUdpBind
{
    /// <inheritdoc/>
    public ushort Port => throw new NotImplementedException();

    /// <inheritdoc/>
    public ushort Open(ushort port, IDatagramReceiver receiver) => throw new NotImplementedException();

    /// <inheritdoc/>
    public void Close() => throw new NotImplementedException();

    /// <inheritdoc/>
    public bool Send(ReadOnlySpan<byte> datagram, in UdpEndpoint destination) => throw new NotImplementedException();

    /// <inheritdoc/>
    public void Dispose() => throw new NotImplementedException();
}
