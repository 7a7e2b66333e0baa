using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using MeshNet.Control.V1;
using MeshNet.Coordination;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using AdminApi = MeshNet.Control.V1.Admin;

namespace MeshNet.Integration.Tests;

/// <summary>
/// "Plain HTTP/2 only on loopback; TLS otherwise": the coordination service hosted in an ASP.NET
/// Core application over HTTPS with a certificate made by the test, nodes that trust it through
/// <see cref="MeshNodeOptions.ConfigureControlHandler"/>, and nodes that refuse plain HTTP to a
/// host that is not loopback.
/// </summary>
[Trait("Category", "Integration")]
public sealed class TransportSecurityTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task NodesJoinAServiceOverTlsWithAPrivateCertificateTheyAreToldToTrust()
    {
        using var certificate = CreateCertificate();
        var directory = Directory.CreateTempSubdirectory("meshnet-tls-").FullName;
        const string adminToken = "tls-test-admin-token-0123456789";
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseHttps(certificate);
        }));
        builder.Services.AddRouting();
        builder.Services.AddMeshNetCoordination(options =>
        {
            options.DatabasePath = Path.Combine(directory, "coordination.db");
            options.AdminToken = adminToken;
        });
        await using var app = builder.Build();
        app.MapMeshNetCoordination();
        await app.StartAsync();
        try
        {
            var url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
            url.Scheme.Should().Be("https");
            void Trust(SocketsHttpHandler handler) => handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { certificate },
                RevocationMode = X509RevocationMode.NoCheck,
            };

            // The admin API over the same TLS endpoint.
            var adminHandler = new SocketsHttpHandler();
            Trust(adminHandler);
            using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = adminHandler, DisposeHttpClient = true });
            var admin = new AdminApi.AdminClient(channel);
            var headers = new Metadata { { "authorization", $"Bearer {adminToken}" } };
            await admin.CreateTailnetAsync(new CreateTailnetRequest { Name = "secure" }, headers);
            var key = (await admin.CreateAuthKeyAsync(new CreateAuthKeyRequest { Tailnet = "secure", Reusable = true }, headers)).Secret;

            MeshNodeOptions Options(string name, bool trust) => new()
            {
                ControlUrl = url,
                AuthKey = key,
                Hostname = name,
                BindAddress = IPAddress.Loopback,
                StartTimeout = trust ? Timeout : TimeSpan.FromSeconds(3),
                ConfigureControlHandler = trust ? Trust : null,
            };

            // Without trusting the certificate a node cannot reach the service.
            var refused = (await ((Func<Task>)(() => MeshNode.StartAsync(Options("untrusting", trust: false)))).Should().ThrowAsync<MeshException>()).Which;
            refused.ErrorCode.Should().Be(MeshErrorCode.ControlUnreachable);
            refused.Message.Should().Contain("SSL");

            await using var web = await MeshNode.StartAsync(Options("web", trust: true));
            await using var client = await MeshNode.StartAsync(Options("client", trust: true));
            web.Tailnet.Should().Be("secure");
            await using var listener = await web.ListenAsync(443);
            var accepting = listener.AcceptAsync().AsTask();
            await using var dialed = await client.DialAsync("web", 443).AsTask().WaitAsync(Timeout);
            await using var accepted = await accepting.WaitAsync(Timeout);
            await dialed.WriteAsync("over tls-bootstrapped wireguard"u8.ToArray());
            var buffer = new byte[31];
            await accepted.ReadExactlyAsync(buffer).AsTask().WaitAsync(Timeout);
            System.Text.Encoding.ASCII.GetString(buffer).Should().Be("over tls-bootstrapped wireguard");
            client.GetStatus().ControlConnected.Should().BeTrue();
            app.Services.GetRequiredService<CoordinationCounters>().CallsRefused.Should().Be(0, "TLS from anywhere is accepted");
        }
        finally
        {
            await app.StopAsync();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("http://192.0.2.10:8443")]
    [InlineData("http://[2001:db8::10]:8443")]
    [InlineData("http://control.example.com")]
    public async Task ANodeRefusesPlainHttpToAHostThatIsNotLoopbackBeforeSendingAnything(string url)
    {
        var started = DateTime.UtcNow;
        var exception = (await ((Func<Task>)(() => MeshNode.StartAsync(new MeshNodeOptions
        {
            ControlUrl = new Uri(url),
            AuthKey = "mnkey-abc-def",
            BindAddress = IPAddress.Loopback,
        }))).Should().ThrowAsync<MeshException>()).Which;
        exception.ErrorCode.Should().Be(MeshErrorCode.InvalidConfiguration);
        exception.Message.Should().Contain("plain HTTP").And.Contain("https");
        (DateTime.UtcNow - started).Should().BeLessThan(TimeSpan.FromSeconds(5), "nothing is attempted");
    }

    /// <summary>A self-signed server certificate for 127.0.0.1 and localhost, valid for a day.</summary>
    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=MeshNet test coordination service", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Round-trip through PKCS#12 so that the private key is usable by the TLS stack on every platform.
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pkcs12), null);
    }
}
