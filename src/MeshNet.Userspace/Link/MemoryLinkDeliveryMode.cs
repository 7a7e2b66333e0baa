namespace MeshNet.Userspace.Link;

/// <summary>How a <see cref="MemoryLink"/> hands queued packets to the receiving end.</summary>
public enum MemoryLinkDeliveryMode
{
    /// <summary>
    /// Like a network interface: each direction has its own delivery thread that drains its
    /// queue and calls the receiving end's <see cref="MemoryLinkEnd.Receiver"/>, one packet at a
    /// time, in the order they were written.
    /// </summary>
    Background,

    /// <summary>
    /// Packets wait in one FIFO queue shared by both directions until the test calls
    /// <see cref="MemoryLink.DeliverPending"/>, which delivers them on the calling thread: for
    /// deterministic, single-threaded protocol tests.
    /// </summary>
    Manual,
}
