namespace MeshNet.TestSupport.Interop;

/// <summary>How <see cref="WireGuardGoPeer.StartAsync"/> configures a wireguard-go interface.</summary>
public sealed record WireGuardGoPeerOptions
{
    /// <summary>Tunnel addresses in CIDR notation, IPv4 and/or IPv6 (e.g. <c>10.77.0.1/24</c>, <c>fd77::1/64</c>); IPv6 ones are added with <c>nodad</c>.</summary>
    public IReadOnlyList<string> Addresses { get; init; } = [];

    /// <summary>UDP listen port; null lets wireguard-go pick one (read back into <see cref="WireGuardGoPeer.ListenPort"/>).</summary>
    public int? ListenPort { get; init; }

    /// <summary>Interface MTU; 1420 like wg-quick. At least 1280 when an IPv6 address is given.</summary>
    public int Mtu { get; init; } = 1420;

    /// <summary>The private key, base64; null generates one with <c>wg genkey</c>.</summary>
    public string? PrivateKeyBase64 { get; init; }

    /// <summary>wireguard-go's <c>LOG_LEVEL</c>: <c>verbose</c>, <c>error</c> or <c>silent</c>. Its output is in <see cref="WireGuardGoPeer.DaemonOutput"/>.</summary>
    public string LogLevel { get; init; } = "error";

    /// <summary>How long to wait for wireguard-go's UAPI socket to answer.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(15);
}
