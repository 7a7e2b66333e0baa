using System.Net;
using MeshNet.DataPlane;

namespace MeshNet.Tests.DataPlane;

[Trait("Category", "Unit")]
public sealed class LocalEndpointsTests
{
    [Fact]
    public void ASpecificBindAdvertisesItself()
    {
        LocalEndpoints.Discover(IPAddress.Loopback, 5000).Should().Equal(new IPEndPoint(IPAddress.Loopback, 5000));
        LocalEndpoints.Discover(IPAddress.Parse("::ffff:127.0.0.1"), 5000).Should().Equal(new IPEndPoint(IPAddress.Loopback, 5000));
    }

    [Fact]
    public void AllAddressesAdvertiseUnicastAddressesLoopbackLast()
    {
        var endpoints = LocalEndpoints.Discover(null, 41641);
        endpoints.Should().NotBeEmpty();
        endpoints.Should().OnlyContain(e => e.Port == 41641);
        endpoints.Should().NotContain(e => e.Address.IsIPv6LinkLocal);
        int firstLoopback = endpoints.ToList().FindIndex(e => IPAddress.IsLoopback(e.Address));
        if (firstLoopback >= 0)
        {
            endpoints.Skip(firstLoopback).Should().OnlyContain(e => IPAddress.IsLoopback(e.Address), "loopback comes last");
        }
        LocalEndpoints.Discover(IPAddress.Any, 1).Should().OnlyContain(e => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
    }

    [Fact]
    public void ReachabilityFollowsTheBoundFamily()
    {
        var v4 = IPEndPoint.Parse("192.0.2.1:1");
        var v6 = IPEndPoint.Parse("[2001:db8::1]:1");
        LocalEndpoints.CanReach(IPAddress.Loopback, v4).Should().BeTrue();
        LocalEndpoints.CanReach(IPAddress.Loopback, v6).Should().BeFalse();
        LocalEndpoints.CanReach(IPAddress.IPv6Loopback, v6).Should().BeTrue();
        LocalEndpoints.CanReach(IPAddress.IPv6Loopback, v4).Should().BeFalse();
        LocalEndpoints.CanReach(IPAddress.IPv6Any, v4).Should().BeTrue();
        LocalEndpoints.CanReach(IPAddress.Any, v6).Should().BeFalse();
        LocalEndpoints.CanReach(null, v4).Should().BeTrue();
    }
}
