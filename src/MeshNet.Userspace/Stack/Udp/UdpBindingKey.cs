namespace MeshNet.Userspace.Stack.Udp;

/// <summary>What a UDP socket is bound to, besides its port.</summary>
internal enum UdpBindKind : byte
{
    /// <summary>One of the stack's addresses.</summary>
    Address,

    /// <summary><c>0.0.0.0</c>: every IPv4 address of the stack.</summary>
    AnyIPv4,

    /// <summary><c>::</c>: every address of the stack, IPv4 and IPv6 (dual-stack).</summary>
    AnyDual,
}

/// <summary>
/// A UDP port table key: the bound address (128 bits, IPv4-mapped for IPv4; zero for
/// wildcards), the kind of binding and the port. Plain value: lookups allocate nothing.
/// </summary>
internal readonly record struct UdpBindingKey(UInt128 Address, UdpBindKind Kind, ushort Port);
