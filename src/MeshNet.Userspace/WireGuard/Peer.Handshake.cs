namespace MeshNet.Userspace.WireGuard;

internal sealed partial class Peer
{
    /// <summary>
    /// Starts a handshake: at most one initiation per RekeyTimeout (5 s). A non-retry
    /// initiation resets the retry count; retries come from the retransmit timer.
    /// </summary>
    public void SendHandshakeInitiation(bool isRetry) => SendHandshakeInitiation(isRetry, force: false);

    /// <summary>
    /// Sends an initiation; with <paramref name="force"/> even when one was sent less than
    /// RekeyTimeout ago: for a peer known to have restarted, whose session from before is dead
    /// even though one was just sent. A forced initiation within the responder's 20 ms flood
    /// limit of the last handshake message is not dropped but sent when the limit has passed
    /// (the last message may well have gone to the peer's previous run).
    /// </summary>
    public void SendHandshakeInitiation(bool isRetry, bool force)
    {
        if (!IsRunning)
        {
            return;
        }
        if (!isRetry)
        {
            Timers.ResetHandshakeAttempts();
        }
        long now = _device.Now();
        long wait = 0;
        lock (Handshake.Sync)
        {
            var guard = force ? WireGuardProtocol.HandshakeInitiationRate : WireGuardProtocol.RekeyTimeout;
            if (Handshake.LastSentHandshake is long last && _device.IsWithin(last, guard, now))
            {
                if (!force)
                {
                    return;
                }
                wait = last + _device.ToTimestampTicks(guard) - now;
            }
            else
            {
                Handshake.LastSentHandshake = now;
            }
        }
        if (wait > 0)
        {
            // A millisecond more than the limit, so that the deferred attempt is past it.
            Timers.DeferInitiation(_device.Time.GetElapsedTime(now, now + wait) + TimeSpan.FromMilliseconds(1));
            return;
        }

        Span<byte> message = stackalloc byte[WireGuardProtocol.InitiationSize];
        if (!_device.Handshakes.CreateInitiation(this, message))
        {
            DeviceLog.InitiationFailed(_device.Logger, ShortKey);
            return;
        }
        CookieGenerator.AddMacs(message);
        Timers.AnyAuthenticatedPacketTraversal();
        Timers.AnyAuthenticatedPacketSent();
        SendControlMessage(message);
        _device.Counters.InitiationSent();
        DeviceLog.InitiationSent(_device.Logger, ShortKey);
        Timers.HandshakeInitiated();
    }

    /// <summary>Answers a consumed initiation and derives the (not yet confirmed) session.</summary>
    public void SendHandshakeResponse()
    {
        if (!IsRunning)
        {
            return;
        }
        lock (Handshake.Sync)
        {
            Handshake.LastSentHandshake = _device.Now();
        }
        Span<byte> message = stackalloc byte[WireGuardProtocol.ResponseSize];
        if (!_device.Handshakes.CreateResponse(this, message))
        {
            DeviceLog.ResponseFailed(_device.Logger, ShortKey);
            return;
        }
        CookieGenerator.AddMacs(message);
        if (!_device.Handshakes.BeginSymmetricSession(this))
        {
            return;
        }
        Timers.SessionDerived();
        Timers.AnyAuthenticatedPacketTraversal();
        Timers.AnyAuthenticatedPacketSent();
        SendControlMessage(message);
        _device.Counters.ResponseSent();
    }

    /// <summary>Sends a handshake message to the current endpoint.</summary>
    private void SendControlMessage(ReadOnlySpan<byte> message)
    {
        var endpoint = Endpoint;
        if (endpoint.IsEmpty)
        {
            _device.Counters.Drop(WireGuardDropReason.NoEndpoint);
            return;
        }
        if (_device.Bind.Send(message, endpoint))
        {
            AddSentBytes(message.Length);
        }
        else
        {
            _device.Counters.Drop(WireGuardDropReason.SendFailed);
        }
    }
}
