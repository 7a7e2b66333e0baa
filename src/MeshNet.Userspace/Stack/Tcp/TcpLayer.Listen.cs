using System.Buffers;
using System.Net;
using System.Net.Sockets;
using MeshNet.Userspace.Net;
using MeshNet.Userspace.Stack.Ip;

namespace MeshNet.Userspace.Stack.Tcp;

/// <summary>A listener's table key: an address (or the wildcard of a family) and a port.</summary>
internal readonly record struct ListenKey(NetAddress Address, ushort Port, bool Any, bool IPv6);

/// <summary>Listeners: LISTEN-state processing (RFC 9293 §3.10.7.2), the half-open queue and SYN cookies.</summary>
internal sealed partial class TcpLayer
{
    /// <summary>Cookie ACKs are only believed within this time of the listener's last cookie (Linux tcp_synq_no_recent_overflow).</summary>
    private const long CookieWindowMicros = 120_000_000;

    /// <summary>Creates a listener on <paramref name="endPoint"/> (port 0 picks an ephemeral port; Any/IPv6Any listens on all addresses of that family).</summary>
    public TcpListener Listen(IPEndPoint endPoint, int backlog)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentOutOfRangeException.ThrowIfLessThan(backlog, 1);
        ObjectDisposedException.ThrowIf(_disposed, typeof(IpStack));
        bool v6 = endPoint.AddressFamily == AddressFamily.InterNetworkV6;
        bool any = endPoint.Address.Equals(IPAddress.Any) || endPoint.Address.Equals(IPAddress.IPv6Any);
        var address = any ? default : NetAddress.FromIPAddress(endPoint.Address);
        if (!any && !Context.IsLocal(address))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }
        lock (_bindLock)
        {
            ushort port = (ushort)endPoint.Port;
            if (port == 0)
            {
                port = PickListenPort(address, any, v6);
            }
            var key = new ListenKey(address, port, any, v6);
            if (_listeners.ContainsKey(key) || ListenConflict(key))
            {
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            }
            var local = any ? new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, port) : new IPEndPoint(endPoint.Address, port);
            var listener = new TcpListener(this, key, local, backlog);
            _listeners[key] = listener;
            TcpLog.Listening(Context.Logger, local.ToString(), backlog);
            return listener;
        }
    }

    /// <summary>A specific-address listener conflicts with a wildcard one of its family on the same port and vice versa.</summary>
    private bool ListenConflict(ListenKey key)
    {
        foreach (var existing in _listeners.Keys)
        {
            if (existing.Port == key.Port && existing.IPv6 == key.IPv6 && (existing.Any || key.Any))
            {
                return true;
            }
        }
        return false;
    }

    private ushort PickListenPort(NetAddress address, bool any, bool v6)
    {
        for (int attempt = 0; attempt < EphemeralCount; attempt++)
        {
            ushort port = (ushort)(EphemeralFirst + ((Interlocked.Increment(ref _ephemeralCounter) & int.MaxValue) % EphemeralCount));
            var key = new ListenKey(address, port, any, v6);
            if (!_listeners.ContainsKey(key) && !ListenConflict(key))
            {
                return port;
            }
        }
        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }

    /// <summary>Called by a listener as it closes.</summary>
    public void RemoveListener(TcpListener listener)
    {
        lock (_bindLock)
        {
            _listeners.TryRemove(new KeyValuePair<ListenKey, TcpListener>(listener.Key, listener));
        }
        TcpLog.ListenerStopped(Context.Logger, listener.LocalEndPoint.ToString());
    }

    /// <summary>The listener for a local address and port: the exact address first, then the family's wildcard.</summary>
    private TcpListener? FindListener(NetAddress local, ushort port)
    {
        if (_listeners.IsEmpty)
        {
            return null;
        }
        if (_listeners.TryGetValue(new ListenKey(local, port, false, local.IsIPv6), out var listener) ||
            _listeners.TryGetValue(new ListenKey(default, port, true, local.IsIPv6), out listener))
        {
            return listener;
        }
        return null;
    }

    /// <summary>True when some listener uses <paramref name="port"/> on <paramref name="local"/>.</summary>
    private bool IsListening(NetAddress local, ushort port) => FindListener(local, port) is not null;

    /// <summary>A segment for a listener with no connection (RFC 9293 §3.10.7.2).</summary>
    private void OnListenerSegment(TcpListener listener, in TcpFlowKey key, ref TcpSegment segment)
    {
        if (segment.Rst)
        {
            Context.Counters.Drop(StackDropReason.TcpNoConnection);
            return;
        }
        if (segment.HasAck)
        {
            if (!segment.Syn && TryCompleteCookie(listener, key, ref segment))
            {
                return;
            }
            Context.Counters.Drop(StackDropReason.TcpNoConnection);
            SendStateless(key, segment.Ack, 0, TcpFlags.Rst);
            return;
        }
        if (!segment.Syn)
        {
            Context.Counters.Drop(StackDropReason.TcpBadFlags);
            return;
        }
        if (!listener.HasRoomForAccept)
        {
            Context.Counters.Drop(StackDropReason.TcpSynDropped); // the application is not accepting: drop, the peer retries
            return;
        }
        if (listener.HalfOpenCount >= Context.Tcp.SynBacklog)
        {
            SendCookieSynAck(listener, key, ref segment);
            return;
        }
        if (!TryReserveConnection())
        {
            return;
        }
        var cb = new TcpControlBlock(this, key, passive: true, listener);
        if (!listener.TryAddHalfOpen(cb))
        {
            Interlocked.Decrement(ref _connectionCount);
            cb.Discard();
            Context.Counters.Drop(StackDropReason.TcpSynDropped);
            return;
        }
        if (!TryInsert(cb))
        {
            listener.OnHalfOpenGone(cb);
            cb.Discard();
            return;
        }
        cb.StartPassiveOpen(ref segment);
    }

    /// <summary>
    /// Answers a SYN with a SYN cookie (no state kept): our ISN encodes the MSS, and with
    /// timestamps our TSval carries the peer's window scale and SACK permission.
    /// </summary>
    private void SendCookieSynAck(TcpListener listener, in TcpFlowKey key, ref TcpSegment syn)
    {
        if (listener.MarkCookieSent(NowMicros()))
        {
            TcpLog.SynCookiesActive(Context.Logger, listener.LocalEndPoint.ToString());
        }
        int peerMss = syn.Options.HasMss ? syn.Options.Mss : (key.RemoteAddress.IsIPv4 ? 536 : 1220);
        int mssIndex = SynCookies.MssIndex(peerMss);
        uint iss = Cookies.Encode(key, syn.Seq, mssIndex);
        bool timestamps = syn.Options.HasTimestamps;
        bool windowScale = timestamps && syn.Options.HasWindowScale;
        bool sack = timestamps && syn.Options.SackPermitted;
        int receiveScale = TcpControlBlock.WindowScaleFor(Context.Tcp.MaxReceiveBuffer);
        int optionsLength = TcpOptions.SynLength(windowScale, sack, timestamps);
        int total = TcpSegment.HeaderLength + optionsLength;
        byte[] buffer = Buffers.Rent(IIpOutput.HeaderRoom + total);
        var packet = buffer.AsSpan(IIpOutput.HeaderRoom, total);
        ushort window = (ushort)Math.Min(Context.Tcp.InitialReceiveWindow, 65535);
        TcpSegment.WriteHeader(packet, key.LocalPort, key.RemotePort, iss, syn.Seq + 1, TcpFlags.Syn | TcpFlags.Ack, window, optionsLength);
        uint tsNow = (uint)(NowMicros() / 1000) + Isn.TimestampOffset(key);
        uint tsVal = SynCookies.EncodeTimestamp(tsNow, windowScale ? syn.Options.WindowScale : -1, sack);
        TcpOptions.WriteSyn(packet[TcpSegment.HeaderLength..], (ushort)Math.Min(MssFor(key.RemoteAddress), 65535), windowScale ? receiveScale : -1,
            sack, timestamps, tsVal, syn.Options.TsVal);
        TcpSegment.SetChecksum(packet, key.LocalAddress, key.RemoteAddress);
        Send(key, buffer, total);
    }

    /// <summary>An ACK for a listener: completes a connection if it carries a valid recent SYN cookie.</summary>
    private bool TryCompleteCookie(TcpListener listener, in TcpFlowKey key, ref TcpSegment ack)
    {
        if (NowMicros() - listener.LastCookieTime > CookieWindowMicros || !listener.CookiesEverSent)
        {
            return false;
        }
        uint iss = ack.Ack - 1;
        int mssIndex = Cookies.Check(key, ack.Seq - 1, iss);
        if (mssIndex < 0)
        {
            return false;
        }
        if (!listener.HasRoomForAccept)
        {
            Context.Counters.Drop(StackDropReason.TcpSynDropped);
            return true; // valid, but nowhere to put it: drop silently like Linux
        }
        (int windowScale, bool sack) = ack.Options.HasTimestamps ? SynCookies.DecodeTimestamp(ack.Options.TsEcr) : (-1, false);
        if (!TryReserveConnection())
        {
            return true;
        }
        var cb = new TcpControlBlock(this, key, passive: true, listener);
        if (!TryInsert(cb))
        {
            cb.Discard();
            return true;
        }
        cb.StartFromCookie(ref ack, iss, Math.Min(SynCookies.MssTable[mssIndex], MssFor(key.RemoteAddress)), windowScale, sack);
        return true;
    }
}
