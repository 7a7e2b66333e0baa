using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using NSec.Cryptography;

namespace MeshNet.Userspace.WireGuard;

/// <summary>
/// A packet waiting for a usable session. <see cref="Buffer"/> is rented from the shared
/// array pool and laid out for in-place encryption: 16 bytes of header room, the packet, then
/// room for padding and the tag. A keepalive has length 0.
/// </summary>
internal readonly record struct StagedPacket(byte[] Buffer, int Length);

internal sealed partial class Peer
{
    private readonly ConcurrentQueue<StagedPacket> _staged = new();
    private int _stagedCount;

    /// <summary>Packets waiting for a session.</summary>
    public int StagedCount => Volatile.Read(ref _stagedCount);

    /// <summary>
    /// Sends one IP packet to this peer: encrypted right away when a session is usable and no
    /// older packet is waiting, otherwise staged (bounded; the oldest goes) while a handshake is
    /// started. Never throws for network conditions.
    /// </summary>
    public void SendPacket(ReadOnlySpan<byte> packet)
    {
        if (!IsRunning)
        {
            _device.Counters.Drop(WireGuardDropReason.DeviceDown);
            return;
        }
        var buffer = RentPacketBuffer(packet.Length);
        packet.CopyTo(buffer.AsSpan(WireGuardProtocol.TransportHeaderSize));
        var item = new StagedPacket(buffer, packet.Length);

        if (Volatile.Read(ref _stagedCount) == 0)
        {
            var keypair = CurrentKeypair;
            if (keypair is not null && keypair.TryAcquire())
            {
                bool sent = false;
                try
                {
                    if (IsUsableForSending(keypair))
                    {
                        sent = TrySendTransport(keypair, item, out bool consumed);
                        if (consumed)
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                            if (sent)
                            {
                                KeepKeyFreshSending();
                            }
                            return;
                        }
                    }
                }
                finally
                {
                    keypair.Release();
                }
            }
        }
        StagePacket(item);
        SendStagedPackets();
    }

    /// <summary>
    /// Sends a keepalive (an empty transport message) — or, when packets are staged, those
    /// packets, which serve the same purpose.
    /// </summary>
    public void SendKeepalive()
    {
        if (Volatile.Read(ref _stagedCount) == 0 && IsRunning)
        {
            StagePacket(new StagedPacket(RentPacketBuffer(0), 0));
        }
        SendStagedPackets();
    }

    /// <summary>
    /// Flushes staged packets over the current session; starts a handshake when there is no
    /// usable session.
    /// </summary>
    public void SendStagedPackets()
    {
        while (Volatile.Read(ref _stagedCount) > 0 && IsRunning)
        {
            var keypair = CurrentKeypair;
            if (keypair is null || !keypair.TryAcquire())
            {
                SendHandshakeInitiation(isRetry: false);
                return;
            }
            bool anySent = false;
            try
            {
                if (!IsUsableForSending(keypair))
                {
                    SendHandshakeInitiation(isRetry: false);
                    return;
                }
                while (_staged.TryDequeue(out var item))
                {
                    Interlocked.Decrement(ref _stagedCount);
                    bool sent = TrySendTransport(keypair, item, out bool consumed);
                    if (!consumed)
                    {
                        // Out of counters on this session: keep the packet for the next one.
                        StagePacket(item);
                        SendHandshakeInitiation(isRetry: false);
                        return;
                    }
                    anySent |= sent;
                    ArrayPool<byte>.Shared.Return(item.Buffer);
                }
            }
            finally
            {
                keypair.Release();
            }
            if (anySent)
            {
                KeepKeyFreshSending();
            }
        }
    }

    /// <summary>Drops every staged packet, counting each under <paramref name="reason"/>.</summary>
    public void FlushStagedPackets(WireGuardDropReason reason)
    {
        int dropped = 0;
        while (_staged.TryDequeue(out var item))
        {
            Interlocked.Decrement(ref _stagedCount);
            ArrayPool<byte>.Shared.Return(item.Buffer);
            if (item.Length > 0)
            {
                dropped++;
            }
        }
        if (dropped > 0)
        {
            _device.Counters.Drop(reason, dropped);
        }
    }

    private void StagePacket(StagedPacket item)
    {
        _staged.Enqueue(item);
        if (Interlocked.Increment(ref _stagedCount) > WireGuardProtocol.MaxStagedPackets &&
            _staged.TryDequeue(out var oldest))
        {
            Interlocked.Decrement(ref _stagedCount);
            ArrayPool<byte>.Shared.Return(oldest.Buffer);
            _device.Counters.Drop(WireGuardDropReason.StagingQueueFull);
        }
    }

    private bool IsUsableForSending(Keypair keypair) =>
        keypair.SendNonce < WireGuardProtocol.RejectAfterMessages &&
        !_device.IsOlderThan(keypair.CreatedTimestamp, WireGuardProtocol.RejectAfterTime, _device.Now());

    /// <summary>
    /// Encrypts <paramref name="item"/> in place and sends it. <paramref name="consumed"/> is
    /// false only when the session has no counters left (the packet is untouched and should be
    /// staged); otherwise the caller returns the buffer. Returns true when data (not a
    /// keepalive) went out.
    /// </summary>
    private bool TrySendTransport(Keypair keypair, StagedPacket item, out bool consumed)
    {
        if (!keypair.TryTakeSendNonce(out ulong counter))
        {
            consumed = false;
            return false;
        }
        consumed = true;
        var endpoint = Endpoint;
        if (endpoint.IsEmpty)
        {
            _device.Counters.Drop(WireGuardDropReason.NoEndpoint);
            return false;
        }

        int padded = WireGuardProtocol.PaddedSize(item.Length, _device.Mtu);
        var buffer = item.Buffer.AsSpan();
        var plaintext = buffer.Slice(WireGuardProtocol.TransportHeaderSize, padded);
        plaintext[item.Length..].Clear();
        int total = WireGuardProtocol.TransportHeaderSize + padded + WireGuardProtocol.TagSize;

        BinaryPrimitives.WriteUInt32LittleEndian(buffer, WireGuardProtocol.MessageTransport);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[WireGuardProtocol.TransportReceiverOffset..], keypair.RemoteIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer[WireGuardProtocol.TransportCounterOffset..], counter);

        Span<byte> nonce = stackalloc byte[12];
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
        AeadAlgorithm.ChaCha20Poly1305.Encrypt(keypair.SendKey, nonce, ReadOnlySpan<byte>.Empty, plaintext,
            buffer.Slice(WireGuardProtocol.TransportHeaderSize, padded + WireGuardProtocol.TagSize));

        if (!_device.Bind.Send(buffer[..total], endpoint))
        {
            _device.Counters.Drop(WireGuardDropReason.SendFailed);
            return false;
        }
        AddSentBytes(total);
        _device.Counters.TransportSent();
        Timers.AnyAuthenticatedPacketTraversal();
        Timers.AnyAuthenticatedPacketSent();
        if (item.Length > 0)
        {
            Timers.DataSent();
            return true;
        }
        _device.Counters.KeepaliveSent();
        return false;
    }

    /// <summary>Rekeys before a session gets old or runs out of counters (whitepaper §6.2).</summary>
    private void KeepKeyFreshSending()
    {
        var keypair = CurrentKeypair;
        if (keypair is null)
        {
            return;
        }
        if (keypair.SendNonce > WireGuardProtocol.RekeyAfterMessages ||
            (keypair.IsInitiator && _device.IsOlderThan(keypair.CreatedTimestamp, WireGuardProtocol.RekeyAfterTime, _device.Now())))
        {
            SendHandshakeInitiation(isRetry: false);
        }
    }

    /// <summary>
    /// The initiator's last-minute rekey on receive: once a session is 165 s old, start one
    /// handshake so a fresh session exists before the old one is rejected at 180 s.
    /// </summary>
    public void KeepKeyFreshReceiving()
    {
        if (Timers.SentLastMinuteHandshake)
        {
            return;
        }
        var keypair = CurrentKeypair;
        if (keypair is not null && keypair.IsInitiator &&
            _device.IsOlderThan(keypair.CreatedTimestamp, WireGuardProtocol.RekeyOnReceiveAge, _device.Now()))
        {
            Timers.SentLastMinuteHandshake = true;
            SendHandshakeInitiation(isRetry: false);
        }
    }

    private static byte[] RentPacketBuffer(int packetLength) =>
        ArrayPool<byte>.Shared.Rent(WireGuardProtocol.TransportHeaderSize + packetLength +
            WireGuardProtocol.PaddingMultiple + WireGuardProtocol.TagSize);
}
