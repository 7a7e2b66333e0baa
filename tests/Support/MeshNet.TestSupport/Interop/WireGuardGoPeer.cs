using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MeshNet.TestSupport.Interop;

/// <summary>
/// A real wireguard-go (<c>wireguard-go -f mnw{pid}-{n}</c>) running inside a
/// <see cref="NetworkNamespace"/>, configured with <c>wg set</c> and <c>ip</c>. Interface names
/// are unique per run because the UAPI socket <c>/var/run/wireguard/IFNAME.sock</c> is shared
/// by all namespaces. Disposal stops the process (SIGTERM, then SIGKILL), removes the socket
/// file, the interface and the key directory; it is idempotent and runs even if the namespace
/// was disposed first. Not thread-safe: configure a peer from one test at a time.
/// </summary>
public sealed class WireGuardGoPeer : IAsyncDisposable
{
    private readonly BackgroundProcess _process;
    private readonly DirectoryInfo _keyDirectory;
    private int _disposed;

    private WireGuardGoPeer(NetworkNamespace ns, string interfaceName, BackgroundProcess process, DirectoryInfo keyDirectory, WireGuardGoPeerOptions options)
    {
        Namespace = ns;
        InterfaceName = interfaceName;
        _process = process;
        _keyDirectory = keyDirectory;
        Addresses = options.Addresses;
        Mtu = options.Mtu;
    }

    /// <summary>The namespace wireguard-go runs in.</summary>
    public NetworkNamespace Namespace { get; }

    /// <summary>The TUN interface name (also the UAPI socket name).</summary>
    public string InterfaceName { get; }

    /// <summary>The UAPI socket of this interface.</summary>
    public string SocketPath => Path.Combine(LeftoverSweeper.WireGuardSocketDirectory, InterfaceName + ".sock");

    /// <summary>The interface's public key, base64.</summary>
    public string PublicKey { get; private set; } = "";

    /// <summary>The interface's private key, base64, for tests that need it.</summary>
    public string PrivateKeyBase64 { get; private set; } = "";

    /// <summary>The UDP port wireguard-go listens on (inside <see cref="Namespace"/>).</summary>
    public int ListenPort { get; private set; }

    /// <summary>The tunnel addresses (CIDR) assigned to the interface.</summary>
    public IReadOnlyList<string> Addresses { get; }

    /// <summary>The interface MTU.</summary>
    public int Mtu { get; }

    /// <summary>What wireguard-go printed so far (its log; see <see cref="WireGuardGoPeerOptions.LogLevel"/>).</summary>
    public string DaemonOutput => _process.Output;

    /// <summary>The pid of the wireguard-go process.</summary>
    public int ProcessId => _process.Id;

    /// <summary>The 0700 directory key files are briefly written to (deleted on disposal).</summary>
    public string KeyDirectoryPath => _keyDirectory.FullName;

    /// <summary>Starts wireguard-go in <paramref name="ns"/>, sets its key and port, assigns the addresses and MTU and brings the interface up.</summary>
    /// <exception cref="InteropPrerequisiteException">Not root, or <c>ip</c>, <c>wg</c> or <c>wireguard-go</c> is missing.</exception>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public static async Task<WireGuardGoPeer> StartAsync(NetworkNamespace ns, WireGuardGoPeerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        options ??= new WireGuardGoPeerOptions();
        Prerequisites.Require("ip", "wg", "wireguard-go");
        EnsureLinux();
        var addresses = Validate(options);
        await LeftoverSweeper.EnsureSweptAsync(cancellationToken).ConfigureAwait(false);

        var interfaceName = RunId.NextName(RunId.WireGuardKind);
        var keyDirectory = Directory.CreateTempSubdirectory(RunId.Prefix(RunId.TempDirectoryKind));
        BackgroundProcess? process = null;
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                keyDirectory.UnixFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
            }

            process = ns.StartProcess(
                "wireguard-go",
                ["-f", interfaceName],
                new Dictionary<string, string>
                {
                    ["WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"] = "1",
                    ["LOG_LEVEL"] = options.LogLevel,
                });
        }
        catch
        {
            keyDirectory.Delete(recursive: true);
            throw;
        }

        var peer = new WireGuardGoPeer(ns, interfaceName, process, keyDirectory, options);
        try
        {
            await peer.WaitUntilReadyAsync(options.StartTimeout, cancellationToken).ConfigureAwait(false);
            var privateKey = options.PrivateKeyBase64
                ?? (await Shell.RunAsync("wg", ["genkey"], cancellationToken).ConfigureAwait(false)).StandardOutput.Trim();
            await peer.SetPrivateKeyAsync(privateKey, options.ListenPort, cancellationToken).ConfigureAwait(false);
            await peer.Namespace.IpAsync(["link", "set", "dev", interfaceName, "mtu", options.Mtu.ToString(CultureInfo.InvariantCulture)], cancellationToken: cancellationToken).ConfigureAwait(false);
            foreach (var (cidr, family) in addresses)
            {
                await peer.Namespace.IpAsync(family == AddressFamily.InterNetworkV6 ? ["addr", "add", cidr, "dev", interfaceName, "nodad"] : ["addr", "add", cidr, "dev", interfaceName], cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            await peer.Namespace.IpAsync(["link", "set", "dev", interfaceName, "up"], cancellationToken: cancellationToken).ConfigureAwait(false);
            return peer;
        }
        catch
        {
            await peer.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Generates a key pair with <c>wg genkey</c> / <c>wg pubkey</c> (base64), e.g. for the MeshNet side of a test.</summary>
    public static async Task<(string PrivateKey, string PublicKey)> GenerateKeyPairAsync(CancellationToken cancellationToken = default)
    {
        Prerequisites.Require("wg");
        var privateKey = (await Shell.RunAsync("wg", ["genkey"], cancellationToken).ConfigureAwait(false)).StandardOutput.Trim();
        return (privateKey, await GetPublicKeyAsync(privateKey, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The public key of <paramref name="privateKeyBase64"/> (<c>wg pubkey</c>).</summary>
    public static async Task<string> GetPublicKeyAsync(string privateKeyBase64, CancellationToken cancellationToken = default)
    {
        ValidateKey(privateKeyBase64, nameof(privateKeyBase64));
        var result = await Shell.RunAsync("wg", ["pubkey"], new ShellOptions { StandardInput = privateKeyBase64 + "\n" }, cancellationToken).ConfigureAwait(false);
        return result.StandardOutput.Trim();
    }

    /// <summary>The endpoint string (<c>addr:port</c>, IPv6 in brackets) of this peer at <paramref name="outerAddress"/>.</summary>
    public string GetEndpoint(IPAddress outerAddress) => new IPEndPoint(outerAddress, ListenPort).ToString();

    /// <summary>Adds or replaces a peer (<c>wg set IF peer PUB endpoint ... allowed-ips ... persistent-keepalive ... preshared-key FILE</c>).</summary>
    /// <param name="publicKeyBase64">The peer's public key.</param>
    /// <param name="endpoint">The peer's endpoint (<c>10.0.0.2:51820</c> or <c>[fd00::2]:51820</c>); null leaves it unset/unchanged.</param>
    /// <param name="allowedIps">The peer's allowed IPs in CIDR notation; they replace the current list.</param>
    /// <param name="persistentKeepalive">Seconds between keepalives (0: off); null leaves it unchanged.</param>
    /// <param name="presharedKeyBase64">A preshared key; null leaves it unchanged.</param>
    /// <param name="cancellationToken">Cancels the command.</param>
    public async Task SetPeerAsync(string publicKeyBase64, string? endpoint, IEnumerable<string> allowedIps, int? persistentKeepalive = null, string? presharedKeyBase64 = null, CancellationToken cancellationToken = default)
    {
        ValidateKey(publicKeyBase64, nameof(publicKeyBase64));
        ArgumentNullException.ThrowIfNull(allowedIps);
        List<string> arguments = ["set", InterfaceName, "peer", publicKeyBase64];
        if (endpoint is not null)
        {
            arguments.AddRange(["endpoint", endpoint]);
        }

        arguments.AddRange(["allowed-ips", string.Join(',', allowedIps)]);
        if (persistentKeepalive is { } keepalive)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(keepalive, nameof(persistentKeepalive));
            arguments.AddRange(["persistent-keepalive", keepalive.ToString(CultureInfo.InvariantCulture)]);
        }

        if (presharedKeyBase64 is null)
        {
            await WgAsync(arguments, cancellationToken).ConfigureAwait(false);
            return;
        }

        ValidateKey(presharedKeyBase64, nameof(presharedKeyBase64));
        var file = WriteKeyFile(presharedKeyBase64);
        try
        {
            arguments.AddRange(["preshared-key", file]);
            await WgAsync(arguments, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Removes a peer (<c>wg set IF peer PUB remove</c>).</summary>
    public Task RemovePeerAsync(string publicKeyBase64, CancellationToken cancellationToken = default)
    {
        ValidateKey(publicKeyBase64, nameof(publicKeyBase64));
        return WgAsync(["set", InterfaceName, "peer", publicKeyBase64, "remove"], cancellationToken);
    }

    /// <summary>Changes the private key (and the listen port when given); <see cref="PublicKey"/> follows.</summary>
    public async Task SetPrivateKeyAsync(string privateKeyBase64, int? listenPort = null, CancellationToken cancellationToken = default)
    {
        ValidateKey(privateKeyBase64, nameof(privateKeyBase64));
        var publicKey = await GetPublicKeyAsync(privateKeyBase64, cancellationToken).ConfigureAwait(false);
        var file = WriteKeyFile(privateKeyBase64);
        try
        {
            List<string> arguments = ["set", InterfaceName, "private-key", file];
            if (listenPort is { } port)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(port, nameof(listenPort));
                ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535, nameof(listenPort));
                arguments.AddRange(["listen-port", port.ToString(CultureInfo.InvariantCulture)]);
            }

            await WgAsync(arguments, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(file);
        }

        PrivateKeyBase64 = privateKeyBase64;
        PublicKey = publicKey;
        await RefreshListenPortAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Changes the listen port (0: a random one); <see cref="ListenPort"/> follows.</summary>
    public async Task SetListenPortAsync(int port, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        await WgAsync(["set", InterfaceName, "listen-port", port.ToString(CultureInfo.InvariantCulture)], cancellationToken).ConfigureAwait(false);
        await RefreshListenPortAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every peer as reported by <c>wg show IF dump</c>.</summary>
    public async Task<IReadOnlyList<WgShowPeer>> GetPeerStatusAsync(CancellationToken cancellationToken = default)
        => WgShowPeer.ParseDump((await WgAsync(["show", InterfaceName, "dump"], cancellationToken).ConfigureAwait(false)).StandardOutput);

    /// <summary>One peer's status, or null when the interface has no such peer.</summary>
    public async Task<WgShowPeer?> GetPeerStatusAsync(string publicKeyBase64, CancellationToken cancellationToken = default)
        => (await GetPeerStatusAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(p => p.PublicKey == publicKeyBase64);

    /// <summary>Polls until the peer reports a handshake later than <paramref name="after"/> (default: any), for at most <paramref name="timeout"/> (default 15 s).</summary>
    public async Task<WgShowPeer> WaitForHandshakeAsync(string publicKeyBase64, DateTimeOffset? after = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        WgShowPeer? status = null;
        await Poll.UntilAsync(
            async ct =>
            {
                status = await GetPeerStatusAsync(publicKeyBase64, ct).ConfigureAwait(false);
                return status?.LatestHandshake is { } at && (after is null || at > after);
            },
            timeout ?? TimeSpan.FromSeconds(15),
            $"a handshake with {publicKeyBase64} on {InterfaceName}",
            cancellationToken).ConfigureAwait(false);
        return status!;
    }

    /// <summary>Adds a route through the tunnel in the namespace (<c>ip route add CIDR dev IF</c>).</summary>
    public Task AddRouteAsync(string cidr, CancellationToken cancellationToken = default)
        => Namespace.IpAsync(["route", "add", cidr, "dev", InterfaceName], cancellationToken: cancellationToken);

    /// <summary>Runs <c>wg ARGS</c> inside the namespace.</summary>
    public Task<ShellResult> WgAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken = default)
        => Namespace.ExecAsync("wg", arguments, cancellationToken: cancellationToken);

    /// <summary>Runs a command inside the peer's namespace (<see cref="NetworkNamespace.ExecAsync"/>).</summary>
    public Task<ShellResult> ExecAsync(string fileName, IReadOnlyList<string> arguments, ShellOptions? options = null, CancellationToken cancellationToken = default)
        => Namespace.ExecAsync(fileName, arguments, options, cancellationToken);

    /// <summary>Pings from the peer's namespace until a reply arrives (<see cref="NetworkNamespace.PingAsync"/>).</summary>
    public Task PingAsync(IPAddress address, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        => Namespace.PingAsync(address, timeout, cancellationToken);

    /// <summary>Stops wireguard-go and removes its socket file, interface and key directory. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await _process.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            try
            {
                // SIGTERM makes wireguard-go remove both itself; after SIGKILL they may remain.
                File.Delete(SocketPath);
                var shown = await Namespace.IpAsync(["link", "show", "dev", InterfaceName], ShellOptions.Unchecked).ConfigureAwait(false);
                if (shown.Succeeded)
                {
                    await Namespace.IpAsync(["link", "delete", "dev", InterfaceName]).ConfigureAwait(false);
                }
            }
            finally
            {
                _keyDirectory.Refresh();
                if (_keyDirectory.Exists)
                {
                    _keyDirectory.Delete(recursive: true);
                }
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"wireguard-go {InterfaceName} in {Namespace.Name}";

    private async Task WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        await Poll.UntilAsync(
            async ct =>
            {
                if (_process.HasExited)
                {
                    throw new InvalidOperationException($"`{_process.CommandLine}` exited with code {_process.ExitCode} before its UAPI socket was ready. Output:\n{_process.Output}");
                }

                return File.Exists(SocketPath)
                    && (await Namespace.ExecAsync("wg", ["show", InterfaceName, "listen-port"], ShellOptions.Unchecked, ct).ConfigureAwait(false)).Succeeded;
            },
            timeout,
            $"wireguard-go {InterfaceName} in {Namespace.Name} to answer on {SocketPath}",
            cancellationToken).ConfigureAwait(false);
    }

    private async Task RefreshListenPortAsync(CancellationToken cancellationToken)
    {
        var output = (await WgAsync(["show", InterfaceName, "listen-port"], cancellationToken).ConfigureAwait(false)).StandardOutput.Trim();
        ListenPort = int.Parse(output, NumberStyles.None, CultureInfo.InvariantCulture);
    }

    // Written with mode 0600 at creation (the per-file equivalent of umask 077) inside a 0700 directory.
    private string WriteKeyFile(string keyBase64)
    {
        var path = Path.Combine(_keyDirectory.FullName, Guid.NewGuid().ToString("N"));
        var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, fileOptions);
        using var writer = new StreamWriter(stream);
        writer.Write(keyBase64 + "\n");
        return path;
    }

    private static void EnsureLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("wireguard-go interop tests run on Linux only.");
        }
    }

    private static void ValidateKey(string keyBase64, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(keyBase64, parameterName);
        Span<byte> key = stackalloc byte[33];
        if (!Convert.TryFromBase64String(keyBase64, key, out var length) || length != 32)
        {
            throw new ArgumentException("Expected a base64 WireGuard key (32 bytes).", parameterName);
        }
    }

    private static List<(string Cidr, AddressFamily Family)> Validate(WireGuardGoPeerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options.Addresses, nameof(options.Addresses));
        var addresses = new List<(string, AddressFamily)>();
        foreach (var cidr in options.Addresses)
        {
            var parts = cidr?.Split('/') ?? [];
            if (parts.Length != 2 || !IPAddress.TryParse(parts[0], out var address)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || length > (address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128))
            {
                throw new ArgumentException($"{nameof(WireGuardGoPeerOptions.Addresses)}: `{cidr}` is not an address in CIDR notation (e.g. 10.77.0.1/24).", nameof(options));
            }

            addresses.Add((cidr!, address.AddressFamily));
        }

        var minimumMtu = addresses.Any(a => a.Item2 == AddressFamily.InterNetworkV6) ? 1280 : 576;
        if (options.Mtu < minimumMtu || options.Mtu > 65535)
        {
            throw new ArgumentException($"{nameof(WireGuardGoPeerOptions.Mtu)} must be between {minimumMtu} and 65535; got {options.Mtu}.", nameof(options));
        }

        if (options.ListenPort is < 0 or > 65535)
        {
            throw new ArgumentException($"{nameof(WireGuardGoPeerOptions.ListenPort)} must be between 0 and 65535; got {options.ListenPort}.", nameof(options));
        }

        if (options.PrivateKeyBase64 is not null)
        {
            ValidateKey(options.PrivateKeyBase64, nameof(options));
        }

        if (options.LogLevel is not ("verbose" or "debug" or "error" or "silent"))
        {
            throw new ArgumentException($"{nameof(WireGuardGoPeerOptions.LogLevel)} must be verbose, error or silent; got `{options.LogLevel}`.", nameof(options));
        }

        return addresses;
    }
}
