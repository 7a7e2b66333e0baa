using System.Net;
using MeshNet.TestSupport;
using MeshNet.Userspace.WireGuard;

namespace MeshNet.Userspace.Tests.WireGuard;

[Trait("Category", "Unit")]
public sealed class AllowedIpsTests
{
    private sealed class Peer(string name)
    {
        public override string ToString() => name;
    }

    private static IPNetwork N(string cidr) => IPNetwork.Parse(cidr);

    private static byte[] A(string address) => IPAddress.Parse(address).GetAddressBytes();

    private static byte[] V4(byte a, byte b, byte c, byte d) => [a, b, c, d];

    private static byte[] V6(uint a, uint b, uint c, uint d)
    {
        var bytes = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, a);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), b);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), c);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), d);
        return bytes;
    }

    // A random prefix of random length, host bits cleared.
    private static IPNetwork RandomPrefix(Random random, int size)
    {
        var bytes = new byte[size];
        random.NextBytes(bytes);
        int length = random.Next(size * 8 + 1);
        for (int bit = length; bit < size * 8; bit++)
        {
            bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }
        return new IPNetwork(new IPAddress(bytes), length);
    }

    private static IPNetwork P4(byte a, byte b, byte c, byte d, int cidr) => new(new IPAddress(V4(a, b, c, d)), cidr);

    private static IPNetwork P6(uint a, uint b, uint c, uint d, int cidr) => new(new IPAddress(V6(a, b, c, d)), cidr);

    // wireguard-go TestTrieIPv4 (ported from the Linux selftest allowedips.h).
    [Fact]
    public void KernelSelftest_IPv4()
    {
        Peer a = new("a"), b = new("b"), c = new("c"), d = new("d"), e = new("e"), g = new("g"), h = new("h");
        var table = new AllowedIps<Peer>();

        table.Insert(P4(192, 168, 4, 0, 24), a);
        table.Insert(P4(192, 168, 4, 4, 32), b);
        table.Insert(P4(192, 168, 0, 0, 16), c);
        table.Insert(P4(192, 95, 5, 64, 27), d);
        table.Insert(P4(192, 95, 5, 65, 27), c); // same prefix as d's once canonicalized: reassigned
        table.Insert(P4(0, 0, 0, 0, 0), e);
        table.Insert(P4(64, 15, 112, 0, 20), g);
        table.Insert(P4(64, 15, 123, 211, 25), h);
        table.Insert(P4(10, 0, 0, 0, 25), a);
        table.Insert(P4(10, 0, 0, 128, 25), b);
        table.Insert(P4(10, 1, 0, 0, 30), a);
        table.Insert(P4(10, 1, 0, 4, 30), b);
        table.Insert(P4(10, 1, 0, 8, 29), c);
        table.Insert(P4(10, 1, 0, 16, 29), d);

        table.Lookup(V4(192, 168, 4, 20)).Should().BeSameAs(a);
        table.Lookup(V4(192, 168, 4, 0)).Should().BeSameAs(a);
        table.Lookup(V4(192, 168, 4, 4)).Should().BeSameAs(b);
        table.Lookup(V4(192, 168, 200, 182)).Should().BeSameAs(c);
        table.Lookup(V4(192, 95, 5, 68)).Should().BeSameAs(c);
        table.Lookup(V4(192, 95, 5, 96)).Should().BeSameAs(e);
        table.Lookup(V4(64, 15, 116, 26)).Should().BeSameAs(g);
        table.Lookup(V4(64, 15, 127, 3)).Should().BeSameAs(g);

        table.Insert(P4(1, 0, 0, 0, 32), a);
        table.Insert(P4(64, 0, 0, 0, 32), a);
        table.Insert(P4(128, 0, 0, 0, 32), a);
        table.Insert(P4(192, 0, 0, 0, 32), a);
        table.Insert(P4(255, 0, 0, 0, 32), a);

        table.Lookup(V4(1, 0, 0, 0)).Should().BeSameAs(a);
        table.Lookup(V4(64, 0, 0, 0)).Should().BeSameAs(a);
        table.Lookup(V4(128, 0, 0, 0)).Should().BeSameAs(a);
        table.Lookup(V4(192, 0, 0, 0)).Should().BeSameAs(a);
        table.Lookup(V4(255, 0, 0, 0)).Should().BeSameAs(a);

        table.RemoveByValue(a).Should().Be(8);

        table.Lookup(V4(1, 0, 0, 0)).Should().NotBeSameAs(a);
        table.Lookup(V4(64, 0, 0, 0)).Should().NotBeSameAs(a);
        table.Lookup(V4(128, 0, 0, 0)).Should().NotBeSameAs(a);
        table.Lookup(V4(192, 0, 0, 0)).Should().NotBeSameAs(a);
        table.Lookup(V4(255, 0, 0, 0)).Should().NotBeSameAs(a);

        table.RemoveByValue(a).Should().Be(0);
        foreach (var peer in new[] { b, c, d, e, g, h })
        {
            table.RemoveByValue(peer);
        }
        table.Count.Should().Be(0);
        table.NodeCount().Should().Be(0, "removing every value empties both tries");

        table.Insert(P4(192, 168, 0, 0, 16), a);
        table.Insert(P4(192, 168, 0, 0, 24), a);
        table.RemoveByValue(a);
        table.Lookup(V4(192, 168, 0, 1)).Should().NotBeSameAs(a);
        table.NodeCount().Should().Be(0);
    }

    // wireguard-go TestTrieIPv6 (ported from the Linux selftest allowedips.h).
    [Fact]
    public void KernelSelftest_IPv6()
    {
        Peer a = new("a"), b = new("b"), c = new("c"), d = new("d"), e = new("e"), f = new("f"), g = new("g"), h = new("h");
        var table = new AllowedIps<Peer>();

        table.Insert(P6(0x26075300, 0x60006b00, 0, 0xc05f0543, 128), d);
        table.Insert(P6(0x26075300, 0x60006b00, 0, 0, 64), c);
        table.Insert(P6(0, 0, 0, 0, 0), e);
        table.Insert(P6(0, 0, 0, 0, 0), f);
        table.Insert(P6(0x24046800, 0, 0, 0, 32), g);
        table.Insert(P6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 64), h);
        table.Insert(P6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 128), a);
        table.Insert(P6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128), c);
        table.Insert(P6(0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98), b);

        table.Lookup(V6(0x26075300, 0x60006b00, 0, 0xc05f0543)).Should().BeSameAs(d);
        table.Lookup(V6(0x26075300, 0x60006b00, 0, 0xc02e01ee)).Should().BeSameAs(c);
        table.Lookup(V6(0x26075300, 0x60006b01, 0, 0)).Should().BeSameAs(f);
        table.Lookup(V6(0x24046800, 0x40040806, 0, 0x1006)).Should().BeSameAs(g);
        table.Lookup(V6(0x24046800, 0x40040806, 0x1234, 0x5678)).Should().BeSameAs(g);
        table.Lookup(V6(0x240467ff, 0x40040806, 0x1234, 0x5678)).Should().BeSameAs(f);
        table.Lookup(V6(0x24046801, 0x40040806, 0x1234, 0x5678)).Should().BeSameAs(f);
        table.Lookup(V6(0x24046800, 0x40040800, 0x1234, 0x5678)).Should().BeSameAs(h);
        table.Lookup(V6(0x24046800, 0x40040800, 0, 0)).Should().BeSameAs(h);
        table.Lookup(V6(0x24046800, 0x40040800, 0x10101010, 0x10101010)).Should().BeSameAs(h);
        table.Lookup(V6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)).Should().BeSameAs(a);

        table.PrefixesOf(e).Should().BeEmpty("f took ::/0 from e");
        table.PrefixesOf(f).Should().Equal(N("::/0"));
        table.PrefixesOf(b).Should().Equal(N("2444:6800:f0e4:800:eeae:beef::/98"));
    }

    [Fact]
    public void LongestPrefix_Wins_AndFallsBackWhenRemoved()
    {
        Peer wide = new("wide"), mid = new("mid"), narrow = new("narrow");
        var table = new AllowedIps<Peer>();
        table.Insert(N("10.0.0.0/8"), wide);
        table.Insert(N("10.1.0.0/16"), mid);
        table.Insert(N("10.1.2.3/32"), narrow);

        table.Lookup(A("10.1.2.3")).Should().BeSameAs(narrow);
        table.Lookup(A("10.1.2.4")).Should().BeSameAs(mid);
        table.Lookup(A("10.2.0.0")).Should().BeSameAs(wide);
        table.Lookup(A("11.0.0.0")).Should().BeNull();

        table.Remove(N("10.1.0.0/16"), mid).Should().BeTrue();
        table.Lookup(A("10.1.2.4")).Should().BeSameAs(wide);
        table.Lookup(A("10.1.2.3")).Should().BeSameAs(narrow);

        table.Remove(N("10.0.0.0/8"), wide).Should().BeTrue();
        table.Lookup(A("10.1.2.4")).Should().BeNull();
        table.Lookup(A("10.1.2.3")).Should().BeSameAs(narrow);
        table.NodeCount().Should().Be(1, "value-less branch nodes are folded away");
    }

    [Fact]
    public void Insert_ExistingPrefix_Reassigns()
    {
        Peer a = new("a"), b = new("b");
        var table = new AllowedIps<Peer>();
        table.Insert(N("10.0.0.0/8"), a);
        table.Insert(N("10.0.0.0/8"), b);

        table.Lookup(A("10.9.9.9")).Should().BeSameAs(b);
        table.PrefixesOf(a).Should().BeEmpty();
        table.PrefixesOf(b).Should().Equal(N("10.0.0.0/8"));
        table.Count.Should().Be(1);
        table.Remove(N("10.0.0.0/8"), a).Should().BeFalse("a no longer owns it");
        table.Lookup(A("10.9.9.9")).Should().BeSameAs(b);
        table.Remove(N("10.0.0.0/8"), b).Should().BeTrue();
        table.Lookup(A("10.9.9.9")).Should().BeNull();
        table.Count.Should().Be(0);
    }

    [Fact]
    public void Insert_SamePrefixTwice_IsIdempotent()
    {
        var a = new Peer("a");
        var table = new AllowedIps<Peer>();
        table.Insert(N("10.0.0.0/8"), a);
        table.Insert(N("10.0.0.0/8"), a);
        table.Count.Should().Be(1);
        table.PrefixesOf(a).Should().Equal(N("10.0.0.0/8"));
    }

    [Fact]
    public void Prefix_IsCanonicalized()
    {
        Peer a = new("a"), b = new("b");
        var table = new AllowedIps<Peer>();
        table.Insert(new IPNetwork(IPAddress.Parse("10.1.2.3"), 8), a);
        table.ReplaceForValue(b, [new IPNetwork(IPAddress.Parse("192.168.1.77"), 24)]);
        // Host bits are ignored: these name the same prefixes.
        table.Remove(new IPNetwork(IPAddress.Parse("10.9.9.9"), 8), b).Should().BeFalse();
        table.Insert(new IPNetwork(IPAddress.Parse("10.200.0.1"), 8), b);
        table.PrefixesOf(a).Should().BeEmpty();
        table.PrefixesOf(b).Should().Equal(N("10.0.0.0/8"), N("192.168.1.0/24"));
    }

    [Fact]
    public void Families_AreSeparate()
    {
        Peer v4 = new("v4"), v6 = new("v6");
        var table = new AllowedIps<Peer>();
        table.Insert(N("0.0.0.0/0"), v4);
        table.Lookup(A("::ffff:1.2.3.4")).Should().BeNull("an IPv4 prefix never matches a 16-byte address");
        table.Lookup(A("::")).Should().BeNull();

        table.Insert(N("::/0"), v6);
        table.Lookup(A("1.2.3.4")).Should().BeSameAs(v4);
        table.Lookup(A("::ffff:1.2.3.4")).Should().BeSameAs(v6);
        table.Lookup(A("0.0.0.0")).Should().BeSameAs(v4);

        table.Insert(N("::ffff:1.2.3.0/120"), v4);
        table.Lookup(A("::ffff:1.2.3.4")).Should().BeSameAs(v4, "an IPv4-mapped prefix is an IPv6 prefix");
        table.PrefixesOf(v4).Should().Equal(N("0.0.0.0/0"), N("::ffff:1.2.3.0/120"));
    }

    [Fact]
    public void ExtremeLengths_ZeroAndFull()
    {
        Peer all4 = new("all4"), host4 = new("host4"), all6 = new("all6"), host6 = new("host6");
        var table = new AllowedIps<Peer>();
        table.Insert(N("0.0.0.0/0"), all4);
        table.Insert(N("255.255.255.255/32"), host4);
        table.Insert(N("::/0"), all6);
        table.Insert(N("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), host6);
        table.Insert(N("::/128"), host6);

        table.Lookup(A("255.255.255.255")).Should().BeSameAs(host4);
        table.Lookup(A("255.255.255.254")).Should().BeSameAs(all4);
        table.Lookup(A("0.0.0.0")).Should().BeSameAs(all4);
        table.Lookup(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).Should().BeSameAs(host6);
        table.Lookup(A("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")).Should().BeSameAs(all6);
        table.Lookup(A("::")).Should().BeSameAs(host6);
        table.Lookup(A("::1")).Should().BeSameAs(all6);

        table.Remove(N("0.0.0.0/0"), all4).Should().BeTrue();
        table.Lookup(A("255.255.255.254")).Should().BeNull();
        table.Lookup(A("255.255.255.255")).Should().BeSameAs(host4);
    }

    [Fact]
    public void RemoveByValue_LeavesOthersIntact()
    {
        Peer a = new("a"), b = new("b");
        var table = new AllowedIps<Peer>();
        table.Insert(N("10.0.0.0/8"), a);
        table.Insert(N("10.1.0.0/16"), b);
        table.Insert(N("10.1.1.0/24"), a);
        table.Insert(N("fd00::/8"), a);
        table.Insert(N("fd00:1::/32"), b);

        table.RemoveByValue(a).Should().Be(3);
        table.Lookup(A("10.1.1.1")).Should().BeSameAs(b);
        table.Lookup(A("10.2.0.0")).Should().BeNull();
        table.Lookup(A("fd00:1::1")).Should().BeSameAs(b);
        table.Lookup(A("fd00:2::1")).Should().BeNull();
        table.Count.Should().Be(2);
        table.NodeCount().Should().Be(2);
    }

    [Fact]
    public void ReplaceForValue_SwapsTheWholeSet()
    {
        Peer a = new("a"), b = new("b");
        var table = new AllowedIps<Peer>();
        table.ReplaceForValue(a, [N("10.0.0.0/8"), N("fd00::/8"), N("10.0.0.0/8")]);
        table.Insert(N("192.168.0.0/16"), b);
        table.PrefixesOf(a).Should().Equal(N("10.0.0.0/8"), N("fd00::/8"));

        table.ReplaceForValue(a, [N("10.0.0.0/8"), N("192.168.0.0/16"), N("172.16.0.0/12")]);
        table.PrefixesOf(a).Should().Equal(N("10.0.0.0/8"), N("172.16.0.0/12"), N("192.168.0.0/16"));
        table.PrefixesOf(b).Should().BeEmpty("a took 192.168.0.0/16 from b");
        table.Lookup(A("fd00::1")).Should().BeNull();
        table.Lookup(A("192.168.1.1")).Should().BeSameAs(a);
        table.Count.Should().Be(3);

        table.ReplaceForValue(a, []);
        table.PrefixesOf(a).Should().BeEmpty();
        table.Count.Should().Be(0);
        table.NodeCount().Should().Be(0);
    }

    [Fact]
    public void Validation()
    {
        var table = new AllowedIps<Peer>();
        var a = new Peer("a");
        FluentActions.Invoking(() => table.Lookup(new byte[5])).Should().Throw<ArgumentException>().WithParameterName("address");
        FluentActions.Invoking(() => table.Lookup([])).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => table.Insert(N("10.0.0.0/8"), null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => table.ReplaceForValue(a, null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => table.PrefixesOf(null!)).Should().Throw<ArgumentNullException>();
        table.Remove(N("10.0.0.0/8"), a).Should().BeFalse();
        table.RemoveByValue(a).Should().Be(0);
    }

    [Fact]
    public void Lookup_DoesNotAllocate()
    {
        var table = new AllowedIps<Peer>();
        var random = new Random(7);
        var peers = Enumerable.Range(0, 16).Select(i => new Peer($"p{i}")).ToArray();
        for (int i = 0; i < 1_000; i++)
        {
            table.Insert(RandomPrefix(random, 4), peers[i % 16]);
            table.Insert(RandomPrefix(random, 16), peers[i % 16]);
        }
        var probes4 = Enumerable.Range(0, 64).Select(_ => { var b = new byte[4]; random.NextBytes(b); return b; }).ToArray();
        var probes16 = Enumerable.Range(0, 64).Select(_ => { var b = new byte[16]; random.NextBytes(b); return b; }).ToArray();
        for (int i = 0; i < 1_000; i++)
        {
            table.Lookup(probes4[i % 64]);
            table.Lookup(probes16[i % 64]);
        }

        int hits = 0;
        long allocated = AllocationMeter.LeastOf(3, () =>
        {
            hits = 0;
            for (int i = 0; i < 10_000; i++)
            {
                if (table.Lookup(probes4[i % 64]) is not null)
                {
                    hits++;
                }
                if (table.Lookup(probes16[i % 64]) is not null)
                {
                    hits++;
                }
            }
        });
        allocated.Should().Be(0);
        hits.Should().BeGreaterThan(0);
    }
}
