using System.Globalization;
using System.Text.RegularExpressions;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// Unique names for everything the harness creates on the machine: <c>mn{kind}{pid}-{n}</c>,
/// where <c>kind</c> is one letter (<see cref="NamespaceKind"/>, <see cref="VethKind"/>, ...),
/// <c>pid</c> is this process id in decimal and <c>n</c> a per-process counter in base 36.
/// </summary>
/// <remarks>
/// Names are unique among concurrent runs because the pid of a live process is unique, and
/// they let a later run find leftovers of a crashed run (its pid is dead), which
/// <see cref="LeftoverSweeper"/> removes. The counter is the only static mutable state of the
/// harness besides <see cref="TestSubnets"/>: it is process-wide by design (uniqueness must
/// hold across every test in the process) and is only ever incremented atomically.
/// </remarks>
public static partial class RunId
{
    /// <summary>Kind letter of network namespaces (<c>mnt123-1</c>).</summary>
    public const char NamespaceKind = 't';

    /// <summary>Kind letter of veth interfaces (<c>mnv123-2a</c>, <c>mnv123-2b</c>).</summary>
    public const char VethKind = 'v';

    /// <summary>Kind letter of wireguard-go interfaces and their UAPI sockets (<c>mnw123-3</c>).</summary>
    public const char WireGuardKind = 'w';

    /// <summary>Kind letter of temporary directories (key files).</summary>
    public const char TempDirectoryKind = 'k';

    /// <summary>Longest Linux interface name (IFNAMSIZ - 1).</summary>
    public const int MaxInterfaceNameLength = 15;

    private static int s_counter;

    /// <summary>The id of this process, encoded in every name.</summary>
    public static int ProcessId { get; } = Environment.ProcessId;

    /// <summary>The prefix of every name of <paramref name="kind"/> created by this process, e.g. <c>mnt123-</c>.</summary>
    public static string Prefix(char kind) => string.Create(CultureInfo.InvariantCulture, $"mn{kind}{ProcessId}-");

    /// <summary>A new name, unique on this machine while this process lives.</summary>
    /// <param name="kind">One lower-case letter naming the kind of resource.</param>
    /// <param name="reserve">Characters the caller will append (e.g. 1 for the veth end suffix); the name plus reserve must fit an interface name.</param>
    public static string NextName(char kind, int reserve = 0)
    {
        if (kind is < 'a' or > 'z')
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "The kind must be a lower-case letter.");
        }

        var name = Prefix(kind) + ToBase36(Interlocked.Increment(ref s_counter));
        if (name.Length + reserve > MaxInterfaceNameLength)
        {
            throw new InvalidOperationException($"Name `{name}` (+{reserve}) exceeds {MaxInterfaceNameLength} characters: too many resources in one process.");
        }

        return name;
    }

    /// <summary>Parses a name made by <see cref="NextName"/> (or a name with the same prefix) into its kind and owner pid.</summary>
    public static bool TryParseOwner(string name, out char kind, out int ownerPid)
    {
        var match = OwnedName().Match(name);
        if (match.Success && int.TryParse(match.Groups[2].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out ownerPid))
        {
            kind = match.Groups[1].Value[0];
            return true;
        }

        kind = default;
        ownerPid = 0;
        return false;
    }

    private static string ToBase36(int value)
    {
        const string Digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        Span<char> buffer = stackalloc char[8];
        var position = buffer.Length;
        do
        {
            buffer[--position] = Digits[value % 36];
            value /= 36;
        }
        while (value > 0);
        return new string(buffer[position..]);
    }

    [GeneratedRegex("^mn([a-z])([0-9]{1,9})-")]
    private static partial Regex OwnedName();
}
