namespace MeshNet.Userspace.Stack.Icmp;

/// <summary>ICMP (RFC 792) and ICMPv6 (RFC 4443, RFC 4861) message types and codes the stack uses.</summary>
internal static class IcmpMessage
{
    /// <summary>Type, code, checksum and four bytes that depend on the type.</summary>
    public const int HeaderLength = 8;

    // ICMP (IPv4)
    public const byte V4EchoReply = 0;
    public const byte V4DestinationUnreachable = 3;
    public const byte V4SourceQuench = 4;
    public const byte V4Redirect = 5;
    public const byte V4EchoRequest = 8;
    public const byte V4TimeExceeded = 11;
    public const byte V4ParameterProblem = 12;

    public const byte V4CodeProtocolUnreachable = 2;
    public const byte V4CodePortUnreachable = 3;
    public const byte V4CodeFragmentationNeeded = 4;
    public const byte V4CodeNetworkProhibited = 9;
    public const byte V4CodeHostProhibited = 10;
    public const byte V4CodeCommunicationProhibited = 13;
    public const byte V4CodeReassemblyTimeExceeded = 1;

    // ICMPv6
    public const byte V6DestinationUnreachable = 1;
    public const byte V6PacketTooBig = 2;
    public const byte V6TimeExceeded = 3;
    public const byte V6ParameterProblem = 4;
    public const byte V6EchoRequest = 128;
    public const byte V6EchoReply = 129;

    public const byte V6CodeAdministrativelyProhibited = 1;
    public const byte V6CodePortUnreachable = 4;
    public const byte V6CodeReassemblyTimeExceeded = 1;
    public const byte V6CodeUnrecognizedNextHeader = 1;

    /// <summary>
    /// True when an ICMP message of <paramref name="type"/> is an error message (or of a type we
    /// do not know, which we treat as one): the stack never sends an error about one
    /// (RFC 1122 3.2.2, RFC 4443 2.4(e)).
    /// </summary>
    public static bool IsErrorOrUnknown(bool ipv6, byte type) =>
        ipv6 ? type < 128 : type is not (V4EchoReply or V4EchoRequest or 13 or 14 or 15 or 16 or 17 or 18);
}
