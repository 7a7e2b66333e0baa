using System.Net;
using MeshNet.Userspace.Link;
using MeshNet.Userspace.Stack;
using static MeshNet.Userspace.Tests.Stack.StackTestBed;

namespace MeshNet.Userspace.Tests.Stack;

/// <summary>Creating, describing and disposing a stack.</summary>
[Trait("Category", "Unit")]
public sealed class IpStackTests
{
    private static IpStackOptions Options(params IPAddress[] addresses) => new() { Link = new RecordingLink(), Addresses = addresses };

    [Fact]
    public void A_stack_reports_its_addresses_and_MTU()
    {
        using var stack = IpStack.Create(new IpStackOptions
        {
            Link = new RecordingLink(),
            Addresses = [LocalV4, LocalV6, IPAddress.Parse("::ffff:10.0.0.7"), LocalV4],
            Mtu = 1280,
        });
        stack.Addresses.Should().Equal(LocalV4, LocalV6, IPAddress.Parse("10.0.0.7"));
        stack.Mtu.Should().Be(1280);
        stack.Counters.PacketsReceived.Should().Be(0);
        stack.MemoryInUse.Should().Be(0);
    }

    [Fact]
    public void Options_are_copied_when_the_stack_is_created()
    {
        var options = Options(LocalV4);
        using var stack = IpStack.Create(options);
        options.Mtu = 9000;
        options.Addresses = [RemoteV4];
        stack.Mtu.Should().Be(1420);
        stack.Addresses.Should().Equal(LocalV4);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("224.0.0.1")]
    [InlineData("ff02::1")]
    [InlineData("255.255.255.255")]
    public void Addresses_must_be_unicast(string address)
    {
        var create = () => IpStack.Create(Options(IPAddress.Parse(address)));
        create.Should().Throw<ArgumentException>().WithParameterName("Addresses");
    }

    [Fact]
    public void Invalid_options_name_the_property()
    {
        var create = () => IpStack.Create(new IpStackOptions { Addresses = [LocalV4] });
        create.Should().Throw<ArgumentException>().WithParameterName("Link");
        create = () => IpStack.Create(Options());
        create.Should().Throw<ArgumentException>().WithParameterName("Addresses");
        create = () => IpStack.Create(new IpStackOptions { Link = new RecordingLink(), Addresses = [LocalV4], Mtu = 1000 });
        create.Should().Throw<ArgumentException>().WithParameterName("Mtu");
        create = () => IpStack.Create(null!);
        create.Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public async Task Disposal_is_idempotent_and_stops_everything()
    {
        var link = new RecordingLink();
        var stack = IpStack.Create(new IpStackOptions { Link = link, Addresses = [LocalV4] });
        stack.Dispose();
        stack.Dispose();
        await stack.DisposeAsync();

        stack.WritePacket(TestPackets.EchoRequest(RemoteV4, LocalV4, 1, 1, [1]));
        link.Count.Should().Be(0, "a disposed stack sends nothing");
        stack.Counters[StackDropReason.StackDisposed].Should().Be(1);
        var bind = () => stack.BindUdp(new IPEndPoint(LocalV4, 0));
        bind.Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void A_stack_is_a_packet_sink_for_a_link()
    {
        var (a, b) = MemoryLink.CreatePair(new MemoryLinkOptions { Delivery = MemoryLinkDeliveryMode.Manual });
        using var link = a.Link;
        using var stack = IpStack.Create(new IpStackOptions { Link = a, Addresses = [LocalV4] });
        a.Receiver = stack;
        var replies = new RecordingLink();
        b.Receiver = replies;

        b.WritePacket(TestPackets.EchoRequest(RemoteV4, LocalV4, 1, 1, [1, 2, 3]));
        link.DeliverPending().Should().Be(2, "the request, then the reply written during its delivery");
        replies.DrainParsed().Should().ContainSingle().Which.Payload[0].Should().Be(0, "an echo reply");
    }
}
