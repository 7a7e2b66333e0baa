namespace MeshNet.Userspace.Conn;

/// <summary>How a <see cref="MemoryNetwork"/> hands queued datagrams to receivers.</summary>
public enum MemoryDeliveryMode
{
    /// <summary>
    /// Like a socket: every open bind has its own delivery thread that drains the bind's queue
    /// and calls its receiver, one datagram at a time, in the order they were queued.
    /// </summary>
    Background,

    /// <summary>
    /// Datagrams wait in one network-wide FIFO queue until the test calls
    /// <see cref="MemoryNetwork.DeliverPending"/>, which delivers them on the calling thread.
    /// This gives deterministic, single-threaded protocol tests.
    /// </summary>
    Manual,
}
