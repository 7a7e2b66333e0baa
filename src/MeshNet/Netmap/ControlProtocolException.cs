namespace MeshNet.Netmap;

/// <summary>
/// The service sent something the protocol does not allow (a delta before any full map, a
/// full map without self). The map stream is restarted without resuming.
/// </summary>
internal sealed class ControlProtocolException(string message) : Exception(message);
