namespace MeshNet.Userspace.Link;

/// <summary>
/// Decides the fate of one packet written into a <see cref="MemoryLink"/>: the impairment hook
/// for tests (loss, duplication, inspection, corruption checks). Called on the writing thread,
/// inside <see cref="MemoryLinkEnd.WritePacket"/>, so possibly from several threads at once.
/// <paramref name="packet"/> is valid only during the call. It should not throw: an exception
/// is logged and the packet dropped.
/// </summary>
/// <param name="sender">The end the packet was written into (it travels to <see cref="MemoryLinkEnd.Peer"/>).</param>
/// <param name="packet">The packet's bytes.</param>
/// <returns>What to do with the packet.</returns>
public delegate MemoryLinkVerdict MemoryLinkFilter(MemoryLinkEnd sender, ReadOnlySpan<byte> packet);
