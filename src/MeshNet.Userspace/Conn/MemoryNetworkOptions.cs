using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Conn;

/// <summary>
/// Settings for a <see cref="MemoryNetwork"/>. The network validates and copies them when it is
/// constructed: changing an options object afterwards has no effect on it.
/// </summary>
public sealed class MemoryNetworkOptions
{
    /// <summary>The default <see cref="QueueCapacity"/>: 4096 datagrams.</summary>
    public const int DefaultQueueCapacity = 4096;

    /// <summary>The largest accepted <see cref="QueueCapacity"/>.</summary>
    public const int MaxQueueCapacity = 1 << 20;

    /// <summary>How queued datagrams reach receivers. Default <see cref="MemoryDeliveryMode.Background"/>.</summary>
    public MemoryDeliveryMode Delivery { get; set; } = MemoryDeliveryMode.Background;

    /// <summary>
    /// How many datagrams may wait for one open bind, like a socket's receive buffer. A datagram
    /// arriving at a full queue is dropped and counted in <see cref="MemoryNetwork.Dropped"/>.
    /// Between 1 and <see cref="MaxQueueCapacity"/>; default 4096.
    /// </summary>
    public int QueueCapacity { get; set; } = DefaultQueueCapacity;

    /// <summary>
    /// Where the network reports exceptions thrown by receivers and filters (they are logged and
    /// otherwise ignored, as a real bind does). <see langword="null"/> disables logging.
    /// </summary>
    public ILogger? Logger { get; set; }

    /// <summary>Throws when a property holds a value the network cannot use.</summary>
    internal void Validate()
    {
        if (!Enum.IsDefined(Delivery))
        {
            throw new ArgumentOutOfRangeException(nameof(Delivery), Delivery, $"{nameof(Delivery)} is not a {nameof(MemoryDeliveryMode)} value.");
        }
        if (QueueCapacity is < 1 or > MaxQueueCapacity)
        {
            throw new ArgumentOutOfRangeException(
                nameof(QueueCapacity), QueueCapacity, $"{nameof(QueueCapacity)} must be between 1 and {MaxQueueCapacity}.");
        }
    }
}
