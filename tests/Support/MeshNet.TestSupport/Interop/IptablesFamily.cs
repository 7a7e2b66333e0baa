namespace MeshNet.TestSupport.Interop;

/// <summary>The iptables flavour of an <see cref="IptablesRule"/>.</summary>
public enum IptablesFamily
{
    /// <summary><c>iptables</c>.</summary>
    IPv4,

    /// <summary><c>ip6tables</c>.</summary>
    IPv6,
}
