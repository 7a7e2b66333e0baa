namespace MeshNet.Userspace.Stack;

/// <summary>TCP settings of an <see cref="IpStack"/>. Validated with the stack's options.</summary>
public sealed class TcpStackOptions
{
    /// <summary>Congestion control algorithm. Default CUBIC.</summary>
    public TcpCongestionControl CongestionControl { get; set; } = TcpCongestionControl.Cubic;

    /// <summary>Disables Nagle's algorithm on new connections (like TCP_NODELAY). Default false.</summary>
    public bool NoDelay { get; set; }

    /// <summary>Delays ACKs (up to <see cref="DelayedAckTimeout"/>, or every second full segment). Default true.</summary>
    public bool DelayedAck { get; set; } = true;

    /// <summary>The delayed-ACK timer. Default 40 ms.</summary>
    public TimeSpan DelayedAckTimeout { get; set; } = TimeSpan.FromMilliseconds(40);

    /// <summary>Largest receive window per connection (auto-tuning grows up to it). Default 4 MiB.</summary>
    public int MaxReceiveBuffer { get; set; } = 4 << 20;

    /// <summary>Largest amount of unacknowledged and unsent data per connection. Default 4 MiB.</summary>
    public int MaxSendBuffer { get; set; } = 4 << 20;

    /// <summary>Receive window offered at the start of a connection. Default 64 KiB.</summary>
    public int InitialReceiveWindow { get; set; } = 64 << 10;

    /// <summary>How long a closed connection stays in TIME-WAIT (2 x MSL). Default 60 s.</summary>
    public TimeSpan TimeWaitDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a half-closed connection waits in FIN-WAIT-2 for the peer's FIN. Default 60 s.</summary>
    public TimeSpan FinWait2Timeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Keepalive probes on idle connections; null disables them. Default null (off), like sockets.</summary>
    public TimeSpan? KeepAliveIdle { get; set; }

    /// <summary>Interval between keepalive probes. Default 75 s.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(75);

    /// <summary>Unanswered keepalive probes before the connection is dropped. Default 9.</summary>
    public int KeepAliveProbes { get; set; } = 9;

    /// <summary>
    /// User timeout (RFC 5482): unacknowledged data older than this aborts the connection.
    /// Default 5 minutes.
    /// </summary>
    public TimeSpan UserTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a connect waits for the handshake before failing. Default 30 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Half-open connections per listener before SYN cookies are used. Default 256.</summary>
    public int SynBacklog { get; set; } = 256;

    /// <summary>Connections the stack holds at most (all states). Default 65536.</summary>
    public int MaxConnections { get; set; } = 65536;

    internal void Validate()
    {
        static void Check(bool ok, string message, string name)
        {
            if (!ok)
            {
                throw new ArgumentException($"TcpStackOptions.{name} {message}", name);
            }
        }

        Check(Enum.IsDefined(CongestionControl), "is not a known algorithm.", nameof(CongestionControl));
        Check(DelayedAckTimeout > TimeSpan.Zero && DelayedAckTimeout <= TimeSpan.FromMilliseconds(500), "must be in (0, 500 ms].", nameof(DelayedAckTimeout));
        Check(MaxReceiveBuffer >= 4096 && MaxReceiveBuffer <= 1 << 30, "must be between 4 KiB and 1 GiB.", nameof(MaxReceiveBuffer));
        Check(MaxSendBuffer >= 4096 && MaxSendBuffer <= 1 << 30, "must be between 4 KiB and 1 GiB.", nameof(MaxSendBuffer));
        Check(InitialReceiveWindow >= 1024 && InitialReceiveWindow <= MaxReceiveBuffer, "must be between 1 KiB and MaxReceiveBuffer.", nameof(InitialReceiveWindow));
        Check(TimeWaitDuration >= TimeSpan.Zero, "must not be negative.", nameof(TimeWaitDuration));
        Check(FinWait2Timeout > TimeSpan.Zero, "must be positive.", nameof(FinWait2Timeout));
        Check(KeepAliveIdle is null || KeepAliveIdle > TimeSpan.Zero, "must be positive when set.", nameof(KeepAliveIdle));
        Check(KeepAliveInterval > TimeSpan.Zero, "must be positive.", nameof(KeepAliveInterval));
        Check(KeepAliveProbes >= 1, "must be at least 1.", nameof(KeepAliveProbes));
        Check(UserTimeout > TimeSpan.Zero, "must be positive.", nameof(UserTimeout));
        Check(ConnectTimeout > TimeSpan.Zero, "must be positive.", nameof(ConnectTimeout));
        Check(SynBacklog >= 1, "must be at least 1.", nameof(SynBacklog));
        Check(MaxConnections >= 1, "must be at least 1.", nameof(MaxConnections));
    }
}
