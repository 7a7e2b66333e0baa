using System.Buffers.Binary;

namespace MeshNet.Coordination.Auth;

/// <summary>What <see cref="NonceCache.TryRecord"/> found.</summary>
internal enum NonceCheck
{
    /// <summary>New: recorded.</summary>
    Fresh,

    /// <summary>Seen before while still valid: a replay.</summary>
    Replayed,

    /// <summary>The cache is full of live nonces: refuse the call rather than forget one.</summary>
    Full,
}

/// <summary>
/// The nonces of recent authenticated calls, for replay protection. A nonce is remembered until
/// its call's timestamp leaves the clock-skew window (after which the timestamp check refuses
/// the call anyway), so memory is bounded by the call rate times the window, and by a hard
/// capacity: when full of live entries, new calls are refused (fail closed). Thread-safe.
/// </summary>
internal sealed class NonceCache
{
    private readonly Lock _gate = new();
    private readonly Dictionary<UInt128, long> _expiries = [];
    private readonly PriorityQueue<UInt128, long> _byExpiry = new();
    private readonly int _capacity;

    public NonceCache(int capacity) => _capacity = capacity;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _expiries.Count;
            }
        }
    }

    /// <summary>Records a 16-byte nonce valid until <paramref name="expiresAtMs"/> (unix ms).</summary>
    public NonceCheck TryRecord(ReadOnlySpan<byte> nonce, long expiresAtMs, long nowMs)
    {
        var key = BinaryPrimitives.ReadUInt128LittleEndian(nonce);
        lock (_gate)
        {
            while (_byExpiry.TryPeek(out var oldest, out long expiry) && expiry < nowMs)
            {
                _byExpiry.Dequeue();
                if (_expiries.TryGetValue(oldest, out long current) && current == expiry)
                {
                    _expiries.Remove(oldest);
                }
            }
            if (_expiries.ContainsKey(key))
            {
                return NonceCheck.Replayed;
            }
            if (_expiries.Count >= _capacity)
            {
                return NonceCheck.Full;
            }
            _expiries.Add(key, expiresAtMs);
            _byExpiry.Enqueue(key, expiresAtMs);
            return NonceCheck.Fresh;
        }
    }
}
