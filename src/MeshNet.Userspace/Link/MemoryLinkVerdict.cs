namespace MeshNet.Userspace.Link;

/// <summary>What a <see cref="MemoryLink"/> does with a packet, as its <see cref="MemoryLink.Filter"/> decides.</summary>
public enum MemoryLinkVerdict
{
    /// <summary>Deliver the packet once (the default when there is no filter).</summary>
    Deliver,

    /// <summary>Lose the packet; it is counted in <see cref="MemoryLinkEnd.PacketsDropped"/> of the receiving end.</summary>
    Drop,

    /// <summary>Deliver the packet twice, back to back; counted in <see cref="MemoryLinkEnd.PacketsDuplicated"/> of the receiving end.</summary>
    Duplicate,
}
