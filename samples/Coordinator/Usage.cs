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
              MeshNet:TlsCa         MESHNET_TLS_CA         a PEM certificate to trust when calling the other servers (private certificates)
            Several servers on one PostgreSQL database:
              MeshNet:Postgres      MESHNET_POSTGRES       an Npgsql connection string (instead of MESHNET_DATABASE_PATH)
              MeshNet:ServerId      MESHNET_SERVER_ID      this server's id in the deployment (unique, stable across restarts)
              MeshNet:AdvertisedUrl MESHNET_ADVERTISED_URL the URL other servers and nodes use for it (default: the first of MESHNET_URLS)
            Tuning: any CoordinationOptions property, in section MeshNet:Coordination or as
              MESHNET_COORDINATION__<NAME>, e.g. MESHNET_COORDINATION__LEASETTL=00:00:05

        Admin (the token comes from MESHNET_ADMIN_TOKEN, never from the command line):
          coordinator create-tailnet NAME [--domain DOMAIN] [--key-lifetime 180d]
          coordinator create-authkey --tailnet NAME [--reusable] [--ephemeral] [--tag tag:x]... [--lifetime 24h] [--description TEXT]
              prints the key's secret (mnkey-...) alone on standard output
          coordinator list-nodes --tailnet NAME
          coordinator set-policy --tailnet NAME --file POLICY.hujson
          coordinator list-servers
          coordinator list-leases
          coordinator move-tailnet TAILNET [--to SERVER]      (default: the least loaded server)
          coordinator drain-server SERVER [--undrain]
          coordinator incidents [--limit 20]
          coordinator release-quarantine TAILNET
          coordinator rebalancer pause|resume
            --server URL (or MESHNET_SERVER_URL): the coordinator (default: the first of MESHNET_URLS, else http://127.0.0.1:8080)
            MESHNET_TLS_CA: a PEM certificate to trust for an https server with a private certificate
        """;
}
