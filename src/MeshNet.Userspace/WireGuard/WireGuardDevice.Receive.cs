using System.Buffers;
using System.Buffers.Binary;
using MeshNet.Userspace.Conn;
using NSec.Cryptography;
using MeshNet.Userspace.Net;

namespace MeshNet.Userspace.WireGuard;

/// <summary>A handshake message waiting for the worker; the buffer is rented from the shared pool.</summary>
internal readonly record struct QueuedHandshake(byte[] Buffer, int Length, NetEndpoint Source)
{
    public void Return() => ArrayPool<byte>.Shared.Return(Buffer);
}

public sealed partial class WireGuardDevice
{
    /// <summary>
    /// Entry point for every received datagram (bind receive thread). Transport messages are
    /// handled inline; handshake messages are queued for the worker. Never throws.
    /// </summary>
    private void ReceiveDatagram(Span<byte> datagram, in NetEndpoint source)
    {
        var counters = _context.Counters;
        if (!_context.IsUp)
        {
            counters.Drop(WireGuardDropReason.DeviceDown);
            return;
        }
        if (datagram.Length < 4)
        {
            counters.Drop(WireGuardDropReason.Truncated);
            return;
        }
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(datagram);
        try
        {
            switch (type)
            {
                case WireGuardProtocol.MessageTransport:
                    ReceiveTransport(datagram, source);
                    break;
                case WireGuardProtocol.MessageInitiation:
                    EnqueueHandshake(datagram, WireGuardProtocol.InitiationSize, source);
                    break;
                case WireGuardProtocol.MessageResponse:
                    EnqueueHandshake(datagram, WireGuardProtocol.ResponseSize, source);
                    break;
                case WireGuardProtocol.MessageCookieReply:
                    EnqueueHandshake(datagram, WireGuardProtocol.CookieReplySize, source);
                    break;
                default:
                    counters.Drop(WireGuardDropReason.UnknownMessageType);
                    break;
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Defensive: bad input must never take the receive thread down.
            DeviceLog.ReceiveError(_context.Logger, exception);
        }
    }

    private void EnqueueHandshake(ReadOnlySpan<byte> datagram, int expectedSize, in NetEndpoint source)
    {
        if (datagram.Length != expectedSize)
        {
            _context.Counters.Drop(datagram.Length < expectedSize ? WireGuardDropReason.Truncated : WireGuardDropReason.InvalidSize);
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(expectedSize);
        datagram.CopyTo(buffer);
        var queued = new QueuedHandshake(buffer, expectedSize, source);
        if (!_handshakeQueue.Writer.TryWrite(queued))
        {
            queued.Return();
            _context.Counters.Drop(WireGuardDropReason.HandshakeQueueFull);
        }
    }

    private void ReceiveTransport(Span<byte> datagram, in NetEndpoint source)
    {
        var counters = _context.Counters;
        if (datagram.Length < WireGuardProtocol.TransportMinSize)
        {
            counters.Drop(WireGuardDropReason.Truncated);
            return;
        }
        uint receiver = BinaryPrimitives.ReadUInt32LittleEndian(datagram[WireGuardProtocol.TransportReceiverOffset..]);
        ulong counter = BinaryPrimitives.ReadUInt64LittleEndian(datagram[WireGuardProtocol.TransportCounterOffset..]);
        var keypair = _context.Indices.LookupKeypair(receiver);
        if (keypair is null || !keypair.TryAcquire())
        {
            counters.Drop(WireGuardDropReason.UnknownReceiverIndex);
            return;
        }
        try
        {
            long now = _context.Now();
            if (counter >= WireGuardProtocol.RejectAfterMessages ||
                _context.IsOlderThan(keypair.CreatedTimestamp, WireGuardProtocol.RejectAfterTime, now))
            {
                counters.Drop(WireGuardDropReason.ExpiredSession);
                return;
            }

            Span<byte> nonce = stackalloc byte[12];
            nonce[..4].Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
            var ciphertext = datagram[WireGuardProtocol.TransportHeaderSize..];
            var plaintext = ciphertext[..^WireGuardProtocol.TagSize];
            if (!AeadAlgorithm.ChaCha20Poly1305.Decrypt(keypair.ReceiveKey, nonce, ReadOnlySpan<byte>.Empty, ciphertext, plaintext))
            {
                counters.Drop(WireGuardDropReason.DecryptionFailed);
                return;
            }
            if (!keypair.ValidateCounter(counter))
            {
                counters.Drop(WireGuardDropReason.ReplayedCounter);
                return;
            }

            var peer = keypair.Peer;
            if (!peer.IsRunning)
            {
                counters.Drop(WireGuardDropReason.DeviceDown);
                return;
            }
            counters.TransportReceived();
            peer.SetEndpointFromPacket(source);
            if (peer.ReceivedWithKeypair(keypair))
            {
                peer.Timers.HandshakeComplete();
                DeviceLog.SessionEstablished(_context.Logger, peer.ShortKey, "responder");
                peer.SendStagedPackets();
            }
            peer.KeepKeyFreshReceiving();
            peer.Timers.AnyAuthenticatedPacketTraversal();
            peer.Timers.AnyAuthenticatedPacketReceived();
            peer.AddReceivedBytes(datagram.Length);

            if (plaintext.IsEmpty)
            {
                return; // keepalive
            }
            peer.Timers.DataReceived();

            if (!InnerPacket.TryParseInbound(plaintext, out int length, out var innerSource))
            {
                counters.Drop(WireGuardDropReason.InvalidInnerPacket);
                return;
            }
            if (_context.AllowedIps.Lookup(innerSource) != peer)
            {
                counters.Drop(WireGuardDropReason.DisallowedSourceAddress);
                return;
            }
            _context.Sink.WritePacket(plaintext[..length]);
        }
        finally
        {
            keypair.Release();
        }
    }

    /// <summary>
    /// Processes every queued handshake message on the calling thread; returns how many. Only
    /// for devices started with manual handshake processing (deterministic tests).
    /// </summary>
    internal int ProcessPendingHandshakes()
    {
        int processed = 0;
        while (_handshakeQueue.Reader.TryRead(out var queued))
        {
            ProcessQueuedHandshake(queued);
            processed++;
        }
        return processed;
    }

    /// <summary>Number of handshake messages waiting (for tests).</summary>
    internal int PendingHandshakes => _handshakeQueue.Reader.Count;

    private async Task RunHandshakeWorkerAsync()
    {
        var reader = _handshakeQueue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var queued))
                {
                    ProcessQueuedHandshake(queued);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void ProcessQueuedHandshake(QueuedHandshake queued)
    {
        try
        {
            if (_context.IsUp)
            {
                ProcessHandshake(queued.Buffer.AsSpan(0, queued.Length), queued.Source, IsUnderLoad());
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            DeviceLog.HandshakeProcessingError(_context.Logger, exception);
        }
        finally
        {
            queued.Return();
        }
    }

    /// <summary>
    /// Under load when the queue holds at least 128 messages, and for one second after that.
    /// </summary>
    private bool IsUnderLoad()
    {
        long now = _context.Now();
        if (_handshakeQueue.Reader.Count >= WireGuardProtocol.UnderLoadQueueLength)
        {
            Volatile.Write(ref _underLoadUntil, now + _context.ToTimestampTicks(WireGuardProtocol.UnderLoadAfterTime));
            return true;
        }
        return now < Volatile.Read(ref _underLoadUntil);
    }

    private void ProcessHandshake(Span<byte> message, in NetEndpoint source, bool underLoad)
    {
        var counters = _context.Counters;
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(message);
        if (type == WireGuardProtocol.MessageCookieReply)
        {
            ConsumeCookieReply(message);
            return;
        }

        var checker = _context.CookieChecker;
        if (!checker.CheckMac1(message))
        {
            counters.Drop(WireGuardDropReason.InvalidMac1);
            return;
        }
        if (underLoad)
        {
            if (!checker.CheckMac2(message, source))
            {
                SendCookieReply(checker, message, source);
                counters.Drop(WireGuardDropReason.CookieRequired);
                return;
            }
            if (!_rateLimiter.Allow(source))
            {
                counters.Drop(WireGuardDropReason.RateLimited);
                return;
            }
        }

        if (type == WireGuardProtocol.MessageInitiation)
        {
            var peer = _context.Handshakes.ConsumeInitiation(message, out var reason);
            if (peer is null)
            {
                counters.Drop(reason);
                return;
            }
            OnAuthenticatedHandshake(peer, source, message.Length);
            peer.SendHandshakeResponse();
        }
        else
        {
            var peer = _context.Handshakes.ConsumeResponse(message, out var completed, out var reason);
            if (peer is null)
            {
                counters.Drop(reason);
                return;
            }
            OnAuthenticatedHandshake(peer, source, message.Length);
            if (!_context.Handshakes.BeginSymmetricSession(peer, completed))
            {
                return;
            }
            peer.Timers.SessionDerived();
            peer.Timers.HandshakeComplete();
            DeviceLog.SessionEstablished(_context.Logger, peer.ShortKey, "initiator");
            peer.SendKeepalive();
        }
    }

    /// <summary>An initiation or response authenticated: roam to its source and feed the timers.</summary>
    private static void OnAuthenticatedHandshake(Peer peer, in NetEndpoint source, int length)
    {
        peer.SetEndpointFromPacket(source);
        peer.AddReceivedBytes(length);
        peer.Timers.AnyAuthenticatedPacketTraversal();
        peer.Timers.AnyAuthenticatedPacketReceived();
    }

    private void SendCookieReply(CookieChecker checker, ReadOnlySpan<byte> message, in NetEndpoint source)
    {
        uint sender = BinaryPrimitives.ReadUInt32LittleEndian(message[4..]);
        Span<byte> reply = stackalloc byte[WireGuardProtocol.CookieReplySize];
        checker.CreateReply(message, sender, source, reply);
        if (_context.Bind.Send(reply, source))
        {
            _context.Counters.CookieReplySent();
            DeviceLog.CookieReplySent(_context.Logger, source.ToString());
        }
    }

    private void ConsumeCookieReply(ReadOnlySpan<byte> message)
    {
        uint receiver = BinaryPrimitives.ReadUInt32LittleEndian(message[WireGuardProtocol.CookieReplyReceiverOffset..]);
        if (!_context.Indices.TryLookup(receiver, out var entry) || !entry.Peer.CookieGenerator.ConsumeReply(message))
        {
            _context.Counters.Drop(WireGuardDropReason.InvalidCookieReply);
            return;
        }
        _context.Counters.CookieReplyAccepted();
        DeviceLog.CookieReplyAccepted(_context.Logger, entry.Peer.ShortKey);
    }
}
