namespace MeshNet;

/// <summary>HTTP clients on the tailnet.</summary>
public sealed partial class MeshNode
{
    /// <summary>How long a pooled HTTP connection is reused before a new one is dialed.</summary>
    private static readonly TimeSpan HttpPooledConnectionLifetime = TimeSpan.FromMinutes(5);

    /// <summary>How long an idle pooled HTTP connection is kept.</summary>
    private static readonly TimeSpan HttpPooledConnectionIdleTimeout = TimeSpan.FromMinutes(1);

    /// <summary>
    /// A <see cref="SocketsHttpHandler"/> whose connections are dialed through this node: use it
    /// with <c>new HttpClient(node.CreateHttpMessageHandler())</c> and request
    /// <c>http://web/</c> or <c>http://web:8080/</c>. The URL's host resolves against the netmap
    /// as in <see cref="DialAsync(string, int, CancellationToken)"/> (a node's name, its fully
    /// qualified name, or one of its tailnet addresses), without DNS.
    /// </summary>
    /// <remarks>
    /// <para>HTTP/1.1 by default; HTTP/2 over cleartext (h2c with prior knowledge) when a request
    /// asks for <see cref="System.Net.HttpVersion.Version20"/> with
    /// <see cref="HttpVersionPolicy.RequestVersionExact"/> (set
    /// <see cref="HttpClient.DefaultRequestVersion"/> and <see cref="HttpClient.DefaultVersionPolicy"/>,
    /// or per request). The tailnet already encrypts and authenticates every packet, so plain
    /// <c>http</c> is the norm; <c>https</c> works too (TLS inside the tunnel) when the server has a
    /// certificate the handler trusts.</para>
    /// <para>Dial failures surface as <see cref="HttpRequestException"/> whose
    /// <see cref="Exception.InnerException"/> is the <see cref="MeshException"/> (for example
    /// <see cref="MeshErrorCode.PeerNotFound"/> for a name that is not a node of the tailnet).</para>
    /// <para>Defaults: no proxy, no cookies, no automatic decompression; pooled connections are
    /// renewed after five minutes (so a peer that changed is dialed afresh) and dropped after a
    /// minute idle. Change any property before the first request.</para>
    /// <para><b>Ownership</b>: the caller owns the handler (an <see cref="HttpClient"/> created with
    /// it disposes it by default). Each call returns a new handler with its own connection pool;
    /// create one per node and reuse it. After the node is disposed its requests fail (with
    /// <see cref="ObjectDisposedException"/> inside the <see cref="HttpRequestException"/>);
    /// dispose the handler with or before the node.</para>
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The node has been disposed.</exception>
    public SocketsHttpHandler CreateHttpMessageHandler()
    {
        ThrowIfDisposed();
        return new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = true,
            PooledConnectionLifetime = HttpPooledConnectionLifetime,
            PooledConnectionIdleTimeout = HttpPooledConnectionIdleTimeout,
            ConnectCallback = ConnectHttpAsync,
        };
    }

    private async ValueTask<Stream> ConnectHttpAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        // An IPv6 literal may come bracketed, as in the URL; names never contain brackets.
        var host = context.DnsEndPoint.Host.Trim('[', ']');
        var connection = await DialAsync(host, context.DnsEndPoint.Port, cancellationToken).ConfigureAwait(false);
        connection.NoDelay = true; // requests and responses are small writes that should leave at once
        return connection;
    }
}
