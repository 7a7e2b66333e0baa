using System.Net;
using Google.Protobuf;
using Google.Protobuf.Collections;

namespace MeshNet.Coordination.Validation;

/// <summary>
/// Field checks of node and admin requests. Each failure is an InvalidArgument
/// <see cref="Grpc.Core.RpcException"/> whose message names the field; nothing here echoes a
/// secret. Pure functions; thread-safe.
/// </summary>
internal static class RequestValidator
{
    public const int KeySize = 32;
    public const int MaxHostnameLength = 256;
    public const int MaxTags = 32;
    public const int MaxEndpoints = 32;
    public const int MaxEndpointLength = 64;
    public const int MaxAuthKeyLength = 128;
    public const int MaxSessionLength = 64;
    public const int MaxDescriptionLength = 256;

    public static void NodeKey(ByteString key, string field)
    {
        if (key.Length != KeySize)
        {
            throw Failures.Invalid($"{field} must be {KeySize} bytes, not {key.Length}");
        }
    }

    public static void Hostname(string hostname)
    {
        if (hostname.Length > MaxHostnameLength)
        {
            throw Failures.Invalid($"hostname is {hostname.Length} characters; the limit is {MaxHostnameLength}");
        }
        foreach (char c in hostname)
        {
            if (char.IsControl(c))
            {
                throw Failures.Invalid("hostname contains a control character");
            }
        }
    }

    /// <summary>Checks tags and returns them sorted, without duplicates.</summary>
    public static IReadOnlyList<string> Tags(IReadOnlyList<string> tags, string field)
    {
        if (tags.Count > MaxTags)
        {
            throw Failures.Invalid($"{field} has {tags.Count} tags; the limit is {MaxTags}");
        }
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            if (!Names.IsTag(tag))
            {
                throw Failures.Invalid($"{field} contains a malformed tag (expected 'tag:' and a DNS label of [a-z0-9-], at most 63 characters)");
            }
            set.Add(tag);
        }
        return [.. set];
    }

    /// <summary>Checks "ip:port" endpoints and returns them in canonical form, order kept, duplicates dropped.</summary>
    public static IReadOnlyList<string> Endpoints(RepeatedField<string> endpoints, string field)
    {
        if (endpoints.Count > MaxEndpoints)
        {
            throw Failures.Invalid($"{field} has {endpoints.Count} entries; the limit is {MaxEndpoints}");
        }
        var result = new List<string>(endpoints.Count);
        foreach (var text in endpoints)
        {
            if (text.Length > MaxEndpointLength || !IPEndPoint.TryParse(text, out var endpoint) || endpoint.Port == 0 || !HasExplicitPort(text))
            {
                throw Failures.Invalid($"{field} contains a malformed endpoint (expected \"ip:port\" or \"[ipv6]:port\")");
            }
            var canonical = endpoint.ToString();
            if (!result.Contains(canonical))
            {
                result.Add(canonical);
            }
        }
        return result;
    }

    public static void Session(string session)
    {
        if (session.Length > MaxSessionLength)
        {
            throw Failures.Invalid($"session is {session.Length} characters; the limit is {MaxSessionLength}");
        }
    }

    /// <summary>A node's run id (MapRequest.instance): at most 64 printable ASCII characters.</summary>
    public static void Instance(string instance)
    {
        if (instance.Length > 64 || instance.Any(c => c is < '!' or > '~'))
        {
            throw Failures.Invalid("instance must be at most 64 printable ASCII characters without spaces");
        }
    }

    /// <summary>An auth key's user: empty, or a name with '@', no whitespace, at most 256 characters.</summary>
    public static void User(string user)
    {
        if (user.Length > 0 && !MeshNet.Coordination.Policy.PolicySyntax.IsUser(user))
        {
            throw Failures.Invalid($"user must contain '@', have no whitespace or ':' and be at most {MeshNet.Coordination.Policy.PolicySyntax.MaxUserLength} characters");
        }
    }

    public static void TailnetName(string name, string field = "name")
    {
        if (!Names.IsLabel(name))
        {
            throw Failures.Invalid($"{field} must be 1-63 characters of [a-z0-9-], not starting or ending with '-'");
        }
    }

    public static void Description(string description)
    {
        if (description.Length > MaxDescriptionLength)
        {
            throw Failures.Invalid($"description is {description.Length} characters; the limit is {MaxDescriptionLength}");
        }
    }

    /// <summary>A positive duration no longer than <paramref name="max"/>.</summary>
    public static TimeSpan Duration(Google.Protobuf.WellKnownTypes.Duration? value, TimeSpan fallback, TimeSpan max, string field)
    {
        if (value is null)
        {
            return fallback;
        }
        if (value.Seconds < 0 || value.Nanos < 0 || value.Seconds > (long)max.TotalSeconds)
        {
            throw Failures.Invalid($"{field} must be positive and at most {max}");
        }
        var span = value.ToTimeSpan();
        if (span <= TimeSpan.Zero || span > max)
        {
            throw Failures.Invalid($"{field} must be positive and at most {max}");
        }
        return span;
    }

    // IPEndPoint.TryParse accepts "1.2.3.4" (port 0) and "::1" (no brackets, no port): insist on a port.
    private static bool HasExplicitPort(string text) =>
        text.StartsWith('[') ? text.Contains("]:", StringComparison.Ordinal) : text.Count(c => c == ':') == 1;
}
