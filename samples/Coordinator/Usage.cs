namespace Coordinator;

internal static class Usage
{
    public const string Text = """
        MeshNet coordinator: a standalone coordination service, and admin commands for it.

        Serve:
          coordinator
            Settings (appsettings.json section "MeshNet", or environment variables):
              MeshNet:Urls          MESHNET_URLS           where to listen, ';'-separated (default http://127.0.0.1:8080)
                                                           plain http:// only on loopback; https:// needs a certificate
              MeshNet:DatabasePath  MESHNET_DATABASE_PATH  the SQLite database (default ./meshnet-coordination.db)
              MeshNet:AdminToken    MESHNET_ADMIN_TOKEN    the Admin API's bearer token (required, at least 16 characters)
              MeshNet:TlsCert       MESHNET_TLS_CERT       certificate for https: a PEM file (with MESHNET_TLS_KEY) or a .pfx
              MeshNet:TlsKey        MESHNET_TLS_KEY        the PEM private key of MESHNET_TLS_CERT

        Admin (the token comes from MESHNET_ADMIN_TOKEN, never from the command line):
          coordinator create-tailnet NAME [--domain DOMAIN] [--key-lifetime 180d]
          coordinator create-authkey --tailnet NAME [--reusable] [--ephemeral] [--tag tag:x]... [--lifetime 24h] [--description TEXT]
              prints the key's secret (mnkey-...) alone on standard output
          coordinator list-nodes --tailnet NAME
            --server URL (or MESHNET_SERVER_URL): the coordinator (default: the first of MESHNET_URLS, else http://127.0.0.1:8080)
            MESHNET_TLS_CA: a PEM certificate to trust for an https server with a private certificate
        """;
}
