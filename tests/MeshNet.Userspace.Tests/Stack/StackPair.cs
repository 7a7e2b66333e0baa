using System.Net;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using Microsoft.Extensions.Time.Testing;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Two stacks joined by a <see cref="MemoryLink"/>: A (10.0.0.1, fd00::1) and B (10.0.0.2, fd00::2).</summary>
internal sealed class StackPair : IDisposable
{
    public static readonly IPAddress AV4 = StackTestBed.LocalV4;
    public static readonly IPAddress BV4 = StackTestBed.RemoteV4;
    public static readonly IPAddress AV6 = StackTestBed.LocalV6;
    public static readonly IPAddress BV6 = StackTestBed.RemoteV6;

    public StackPair(MemoryLinkDeliveryMode delivery = MemoryLinkDeliveryMode.Background, Action<IpStackOptions>? configure = null,
        bool withIPv6 = true)
    {
        Link = new MemoryLink(new MemoryLinkOptions { Delivery = delivery });
        A = Create(Link.A, withIPv6 ? [AV4, AV6] : [AV4], configure);
        B = Create(Link.B, [BV4, BV6], configure);
        Link.A.Receiver = A;
        Link.B.Receiver = B;
    }

    public MemoryLink Link { get; }

    public IpStack A { get; }

    public IpStack B { get; }

    /// <summary>Only used by manual-mode tests that need timers; background tests use the system clock.</summary>
    public FakeTimeProvider? Time { get; private set; }

    public static IPAddress AAddress(bool v6) => v6 ? AV6 : AV4;

    public static IPAddress BAddress(bool v6) => v6 ? BV6 : BV4;

    /// <summary>Manual mode: delivers everything in flight.</summary>
    public int Deliver() => Link.DeliverPending();

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        Link.Dispose();
    }

    private IpStack Create(MemoryLinkEnd end, IPAddress[] addresses, Action<IpStackOptions>? configure)
    {
        var options = new IpStackOptions { Link = end, Addresses = addresses };
        if (Link.Delivery == MemoryLinkDeliveryMode.Manual)
        {
            Time ??= new FakeTimeProvider();
            options.TimeProvider = Time;
        }
        configure?.Invoke(options);
        return IpStack.Create(options);
    }
}
