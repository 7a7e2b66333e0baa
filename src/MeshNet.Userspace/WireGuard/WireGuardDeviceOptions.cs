using MeshNet.Userspace.Conn;
using MeshNet.Userspace.Crypto;
using MeshNet.Userspace.Link;
using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// Options for <see cref="WireGuardDevice.StartAsync"/>. Validated when the device starts;
/// an invalid value throws an <see cref="ArgumentException"/> naming the property.
/// </summary>
public sealed class WireGuardDeviceOptions
{
    /// <summary>
    /// The device's private key (required). The device keeps its own copy: the caller may
    /// dispose this instance after the device has started.
    /// </summary>
    public WireGuardPrivateKey? PrivateKey { get; set; }

    /// <summary>
    /// The UDP transport (required), for example a <see cref="UdpSocketBind"/> or a bind of a
    /// <see cref="MemoryNetwork"/>. The device opens it, and closes and disposes it when the
    /// device is disposed.
    /// </summary>
    public IUdpBind? Bind { get; set; }

    /// <summary>
    /// Where decrypted IP packets go (required): typically the TCP/IP stack. Called on the
    /// bind's receive thread; must not block.
    /// </summary>
    public IPacketSink? InboundSink { get; set; }

    /// <summary>The UDP port to listen on; 0 (the default) picks a free port.</summary>
    public ushort ListenPort { get; set; }

    /// <summary>Tunnel MTU used for padding decisions; default 1420.</summary>
    public int Mtu { get; set; } = WireGuardProtocol.DefaultMtu;

    /// <summary>The clock for every timer, expiry and timestamp; default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Logging; default none. Keys are never logged, only short public-key prefixes.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>
    /// When true, handshake messages are only processed when the caller invokes
    /// <see cref="WireGuardDevice.ProcessPendingHandshakes"/>, so protocol tests can run
    /// single-threaded and deterministically. Default false: a background worker processes them.
    /// </summary>
    internal bool ManualHandshakeProcessing { get; set; }

    /// <summary>Test hook: the source of timer jitter (default: the shared thread-safe generator).</summary>
    internal Random? JitterRandom { get; set; }

    /// <summary>Test hook: supplies ephemeral keys (default: fresh random X25519 keys).</summary>
    internal Func<NSec.Cryptography.Key>? EphemeralKeyFactory { get; set; }

    internal void Validate()
    {
        if (PrivateKey is null)
        {
            throw new ArgumentException("WireGuardDeviceOptions.PrivateKey is required.", nameof(PrivateKey));
        }
        if (Bind is null)
        {
            throw new ArgumentException("WireGuardDeviceOptions.Bind is required.", nameof(Bind));
        }
        if (InboundSink is null)
        {
            throw new ArgumentException("WireGuardDeviceOptions.InboundSink is required.", nameof(InboundSink));
        }
        if (Mtu is < 576 or > 65535)
        {
            throw new ArgumentException($"WireGuardDeviceOptions.Mtu must be between 576 and 65535, not {Mtu}.", nameof(Mtu));
        }
        if (TimeProvider is null)
        {
            throw new ArgumentException("WireGuardDeviceOptions.TimeProvider must not be null.", nameof(TimeProvider));
        }
    }
}
