using System.Net;
using System.Net.Sockets;
using MeshNet.Integration.Tests.Infrastructure;

namespace MeshNet.Integration.Tests.Policy;

/// <summary>
/// A <see cref="TestTailnet"/> with users and tags: auth keys for alice and bob (members of no
/// tag) and for tagged nodes, and helpers to save a policy and wait until the given nodes apply it.
/// </summary>
internal sealed class PolicyTailnet : IAsyncDisposable
{
    public const string Alice = "alice@example.com";
    public const string Bob = "bob@example.com";

    /// <summary>
    /// Every policy of these tests starts with this: tag owners, and a rule that lets tag:web
    /// reach everyone, so that every node sees the web nodes (visibility goes both ways) and a
    /// refusal shows as the web node's packet filter denying, not as a missing peer.
    /// </summary>
    public const string Preamble = """
          "tagOwners": {
            "tag:web": ["admin@example.com"],
            "tag:ci": ["admin@example.com"],
          },
        """;

    public const string WebReachesEveryone = """{ "action": "accept", "src": ["tag:web"], "dst": ["*:*"] },""";

    private PolicyTailnet(TestTailnet tailnet) => Tailnet = tailnet;

    public TestTailnet Tailnet { get; }

    public static async Task<PolicyTailnet> StartAsync() => new(await TestTailnet.StartAsync());

    public async Task<MeshNode> StartUserNodeAsync(string hostname, string user)
    {
        var key = await Tailnet.Server.CreateAuthKeyAsync("acme", user: user);
        return await Tailnet.StartNodeAsync(hostname, key);
    }

    public async Task<MeshNode> StartTaggedNodeAsync(string hostname, params string[] tags)
    {
        var key = await Tailnet.Server.CreateAuthKeyAsync("acme", tags: tags);
        return await Tailnet.StartNodeAsync(hostname, key);
    }

    /// <summary>Saves a policy made of <see cref="Preamble"/>, <paramref name="extra"/> top-level members, and the rules; waits until every node in <paramref name="nodes"/> applied it.</summary>
    public async Task<ulong> SaveAsync(IEnumerable<MeshNode> nodes, string rules, string extra = "")
    {
        var text = $$"""
            {
            {{Preamble}}
            {{extra}}
              "acls": [
                {{WebReachesEveryone}}
                {{rules}}
              ],
            }
            """;
        ulong version = await Tailnet.Server.SetPolicyAsync("acme", text);
        foreach (var node in nodes)
        {
            await TestTailnet.WaitUntilAsync(() => node.GetStatus() is { PolicyEnforced: true } status && status.PolicyVersion >= version,
                $"{node.Name} to apply policy version {version}");
        }
        return version;
    }

    /// <summary>Dials and exchanges a line, or returns the MeshException's code.</summary>
    public static async Task<MeshErrorCode?> TryConnectAsync(MeshNode from, MeshNode to, int port)
    {
        try
        {
            await using var connection = await from.DialAsync(to.Name, port).AsTask().WaitAsync(TestTailnet.Timeout);
            return null;
        }
        catch (MeshException e)
        {
            return e.ErrorCode;
        }
    }

    /// <summary>Listens on <paramref name="port"/> and accepts (and closes) every connection until the tailnet is disposed.</summary>
    public async Task ServeAsync(MeshNode node, int port)
    {
        var listener = Tailnet.Own(await node.ListenAsync(port));
        _ = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    await using var connection = await listener.AcceptAsync();
                }
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException or MeshException or IOException)
            {
            }
        });
    }

    public static IPAddress V4(MeshNode node) => node.Addresses.First(a => a.AddressFamily == AddressFamily.InterNetwork);

    public ValueTask DisposeAsync() => Tailnet.DisposeAsync();
}
