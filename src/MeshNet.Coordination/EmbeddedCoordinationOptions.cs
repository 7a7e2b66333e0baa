using Microsoft.Extensions.Logging;

namespace MeshNet.Coordination;

/// <summary>
/// Options of <see cref="EmbeddedCoordinationServer.StartAsync"/>. Validated when the server
/// starts; an invalid value throws an <see cref="ArgumentException"/> naming the property.
/// </summary>
public sealed class EmbeddedCoordinationOptions
{
    /// <summary>
    /// Where to listen: a plain <c>http://</c> URL on a loopback address (127.0.0.1, [::1] or
    /// localhost), port 0 for a free one. Default <c>http://127.0.0.1:0</c>.
    /// </summary>
    public string Url { get; set; } = "http://127.0.0.1:0";

    /// <summary>
    /// The directory of the SQLite database (created if needed, kept on dispose). Null (the
    /// default): a new temporary directory, deleted on dispose.
    /// </summary>
    public string? DataDirectory { get; set; }

    /// <summary>The admin token; null (the default) generates a random one (see <see cref="EmbeddedCoordinationServer.AdminToken"/>).</summary>
    public string? AdminToken { get; set; }

    /// <summary>The clock of the service; default the system clock.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>Logging; default none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Further service options (keep-alive interval, timeouts, limits), applied last.</summary>
    public Action<CoordinationOptions>? Configure { get; set; }

    internal Uri ValidateUrl()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp || uri.AbsolutePath != "/" ||
            !(uri.IsLoopback && (uri.Host == "localhost" || System.Net.IPAddress.TryParse(uri.Host.Trim('[', ']'), out _))))
        {
            throw new ArgumentException(
                $"EmbeddedCoordinationOptions.Url must be an http:// URL on a loopback address (plain HTTP/2 is for loopback only), not '{Url}'.", nameof(Url));
        }
        return uri;
    }
}
