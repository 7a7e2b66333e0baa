using Microsoft.Extensions.Logging;

namespace MeshNet.Userspace.Link;

/// <summary>
/// Settings for a <see cref="MemoryLink"/>. The link validates and copies them when it is
/// created: changing an options object afterwards has no effect on it.
/// </summary>
public sealed class MemoryLinkOptions
{
    /// <summary>The default <see cref="QueueCapacity"/>: 4096 packets.</summary>
    public const int DefaultQueueCapacity = 4096;

    /// <summary>The largest accepted <see cref="QueueCapacity"/>.</summary>
    public const int MaxQueueCapacity = 1 << 20;

    /// <summary>How queued packets reach the other end. Default <see cref="MemoryLinkDeliveryMode.Background"/>.</summary>
    public MemoryLinkDeliveryMode Delivery { get; set; } = MemoryLinkDeliveryMode.Background;

    /// <summary>
    /// Packets that may wait in each direction, like an interface's transmit queue; a packet
    /// written into a full direction is dropped and counted. Between 1 and
    /// <see cref="MaxQueueCapacity"/>; default 4096.
    /// </summary>
    public int QueueCapacity { get; set; } = DefaultQueueCapacity;

    /// <summary>
    /// The largest packet the link carries, like a link MTU; larger packets are dropped and
    /// counted. Between 1 and 65,535 (the default).
    /// </summary>
    public int MaxPacketSize { get; set; } = 65535;

    /// <summary>
    /// Where the link reports exceptions thrown by receivers and filters (they are logged and
    /// otherwise ignored). Null (the default) disables logging.
    /// </summary>
    public ILogger? Logger { get; set; }

    /// <summary>Throws when a property holds a value the link cannot use.</summary>
    internal void Validate()
    {
        if (!Enum.IsDefined(Delivery))
        {
            throw new ArgumentOutOfRangeException(nameof(Delivery), Delivery, $"{nameof(Delivery)} is not a {nameof(MemoryLinkDeliveryMode)} value.");
        }
        if (QueueCapacity is < 1 or > MaxQueueCapacity)
        {
            throw new ArgumentOutOfRangeException(nameof(QueueCapacity), QueueCapacity, $"{nameof(QueueCapacity)} must be between 1 and {MaxQueueCapacity}.");
        }
        if (MaxPacketSize is < 1 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPacketSize), MaxPacketSize, $"{nameof(MaxPacketSize)} must be between 1 and 65535.");
        }
    }
}
