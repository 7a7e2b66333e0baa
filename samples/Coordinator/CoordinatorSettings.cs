using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Coordinator;

/// <summary>The server's settings, from configuration ("MeshNet:Name") or the environment ("MESHNET_NAME"), validated.</summary>
internal sealed class CoordinatorSettings
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    public required IReadOnlyList<Uri> Urls { get; init; }

    public required string DatabasePath { get; init; }

    /// <summary>The PostgreSQL connection string of a deployment of several servers (null: SQLite, one server).</summary>
    public string? Postgres { get; init; }

    /// <summary>This server's id among the servers sharing the PostgreSQL database.</summary>
    public string? ServerId { get; init; }

    /// <summary>The URL nodes and the other servers reach this server at.</summary>
    public string? AdvertisedUrl { get; init; }

    public required string AdminToken { get; init; }

    public X509Certificate2? Certificate { get; init; }

    /// <summary>Reads a setting as "MeshNet:<paramref name="name"/>" or, from MESHNET_ variables, "<paramref name="environmentName"/>".</summary>
    public static string? Get(IConfiguration configuration, string name, string environmentName) =>
        NullIfEmpty(configuration[$"MeshNet:{name}"]) ?? NullIfEmpty(configuration[environmentName]);

    /// <exception cref="InvalidOperationException">A setting is missing or unusable; the message says which and how to fix it.</exception>
    public static CoordinatorSettings From(IConfiguration configuration)
    {
        var token = Get(configuration, "AdminToken", "ADMIN_TOKEN");
        if (token is null || token.Length < 16)
        {
            throw new InvalidOperationException("an admin token of at least 16 characters is required: set MESHNET_ADMIN_TOKEN (or MeshNet:AdminToken).");
        }
        var certificate = LoadCertificate(Get(configuration, "TlsCert", "TLS_CERT"), Get(configuration, "TlsKey", "TLS_KEY"));
        var urls = new List<Uri>();
        foreach (var text in (Get(configuration, "Urls", "URLS") ?? DefaultUrl).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.AbsolutePath != "/")
            {
                throw new InvalidOperationException($"'{text}' is not a listen URL: use http://HOST:PORT or https://HOST:PORT.");
            }
            if (url.Scheme == "http" && !IsLoopback(url))
            {
                throw new InvalidOperationException(
                    $"refusing plain HTTP on {text}: plain HTTP/2 is for loopback only (127.0.0.1, [::1], localhost). " +
                    "Listen on https:// with a certificate (MESHNET_TLS_CERT and MESHNET_TLS_KEY) to serve other machines.");
            }
            if (url.Scheme == "https" && certificate is null)
            {
                throw new InvalidOperationException($"{text} needs a certificate: set MESHNET_TLS_CERT (a PEM file with MESHNET_TLS_KEY, or a .pfx).");
            }
            urls.Add(url);
        }
        if (urls.Count == 0)
        {
            throw new InvalidOperationException("MESHNET_URLS lists no URL.");
        }
        var postgres = Get(configuration, "Postgres", "POSTGRES");
        var serverId = Get(configuration, "ServerId", "SERVER_ID");
        var advertised = Get(configuration, "AdvertisedUrl", "ADVERTISED_URL");
        if (postgres is not null)
        {
            if (serverId is null)
            {
                throw new InvalidOperationException("with MESHNET_POSTGRES every server needs its own id: set MESHNET_SERVER_ID (e.g. s1).");
            }
            if (advertised is null)
            {
                var first = urls[0];
                if (first.Host is "0.0.0.0" or "[::]")
                {
                    throw new InvalidOperationException(
                        $"{first} listens on every address: set MESHNET_ADVERTISED_URL to the URL nodes and the other servers reach this server at.");
                }
                advertised = first.ToString().TrimEnd('/');
            }
        }
        return new CoordinatorSettings
        {
            Urls = urls,
            DatabasePath = Path.GetFullPath(Get(configuration, "DatabasePath", "DATABASE_PATH") ?? "meshnet-coordination.db"),
            AdminToken = token,
            Certificate = certificate,
            Postgres = postgres,
            ServerId = serverId,
            AdvertisedUrl = advertised,
        };
    }

    /// <summary>The address Kestrel binds for <paramref name="url"/>: localhost is the IPv4 loopback, 0.0.0.0 and [::] every address.</summary>
    public static IPAddress ListenAddress(Uri url) =>
        url.IsLoopback && !IPAddress.TryParse(url.Host.Trim('[', ']'), out _) ? IPAddress.Loopback : IPAddress.Parse(url.Host.Trim('[', ']'));

    public static bool IsLoopback(Uri url) =>
        url.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(url.Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    private static X509Certificate2? LoadCertificate(string? certificate, string? key)
    {
        if (certificate is null)
        {
            return null;
        }
        try
        {
            if (certificate.EndsWith(".pfx", StringComparison.OrdinalIgnoreCase) || certificate.EndsWith(".p12", StringComparison.OrdinalIgnoreCase))
            {
                return X509CertificateLoader.LoadPkcs12FromFile(certificate, Environment.GetEnvironmentVariable("MESHNET_TLS_PASSWORD"));
            }
            if (key is null)
            {
                throw new InvalidOperationException("MESHNET_TLS_CERT is a PEM file: set MESHNET_TLS_KEY to its private key.");
            }
            using var pem = X509Certificate2.CreateFromPemFile(certificate, key);
            // Through PKCS#12, so that the TLS stack can use the key on every platform.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"the certificate {certificate} could not be loaded: {e.Message}", e);
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
