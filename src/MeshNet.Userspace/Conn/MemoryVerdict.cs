namespace MeshNet.Userspace.Conn;

/// <summary>What a <see cref="MemoryNetwork"/> does with a datagram, as decided by its <see cref="MemoryNetwork.Filter"/>.</summary>
public enum MemoryVerdict
{
    /// <summary>Deliver the datagram once (the default when there is no filter).</summary>
    Deliver,

    /// <summary>Lose the datagram; it is counted in <see cref="MemoryNetwork.Dropped"/>.</summary>
    Drop,

    /// <summary>Deliver the datagram twice, back to back; counted in <see cref="MemoryNetwork.Duplicated"/>.</summary>
    Duplicate,
}
