using System.Security.Cryptography;

namespace MeshNet.Coordination.Registry;

/// <summary>
/// The secret form of an auth key, <c>mnkey-&lt;id&gt;-&lt;secret&gt;</c>: a 12-character public id
/// and a 32-character secret, both of [a-z0-9] (the secret carries about 165 bits). Only the
/// SHA-256 of the secret is stored; a fast hash is enough for a secret of that entropy.
/// </summary>
internal static class AuthKeySecret
{
    public const string Prefix = "mnkey-";
    public const int IdLength = 12;
    public const int SecretLength = 32;
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>A new key: its id, the full secret form, and the hash to store.</summary>
    public static (string Id, string Text, byte[] Hash) Generate()
    {
        var id = RandomNumberGenerator.GetString(Alphabet, IdLength);
        var secret = RandomNumberGenerator.GetString(Alphabet, SecretLength);
        return (id, $"{Prefix}{id}-{secret}", Hash(secret));
    }

    /// <summary>
    /// The key a request with an idempotency key creates: derived from the server's secret, the
    /// tailnet and the idempotency key (HKDF-SHA256), so that a retried request gets the same key
    /// back (the secret is stored only as a hash, so it could not be returned otherwise) while
    /// nobody without the server's secret can predict it.
    /// </summary>
    public static (string Id, string Text, byte[] Hash) Derive(ReadOnlySpan<byte> serverSecret, string tailnet, string idempotencyKey)
    {
        var info = System.Text.Encoding.UTF8.GetBytes($"meshnet auth key\n{tailnet}\n{idempotencyKey}");
        Span<byte> stream = stackalloc byte[256];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, serverSecret, stream, salt: [], info: info);
        Span<char> chars = stackalloc char[IdLength + SecretLength];
        int filled = 0;
        foreach (byte value in stream)
        {
            // Rejection sampling: 252 is the largest multiple of 36 below 256, so every character is uniform.
            if (value < 252 && filled < chars.Length)
            {
                chars[filled++] = Alphabet[value % Alphabet.Length];
            }
        }
        CryptographicOperations.ZeroMemory(stream);
        if (filled < chars.Length)
        {
            throw new CryptographicException("The derived stream was too short (practically impossible).");
        }
        var id = new string(chars[..IdLength]);
        var secret = new string(chars[IdLength..]);
        return (id, $"{Prefix}{id}-{secret}", Hash(secret));
    }

    /// <summary>Splits <c>mnkey-id-secret</c>; false when the text is not of that form.</summary>
    public static bool TryParse(string text, out string id, out string secret)
    {
        id = secret = "";
        if (text.Length != Prefix.Length + IdLength + 1 + SecretLength || !text.StartsWith(Prefix, StringComparison.Ordinal) ||
            text[Prefix.Length + IdLength] != '-')
        {
            return false;
        }
        id = text.Substring(Prefix.Length, IdLength);
        secret = text[(Prefix.Length + IdLength + 1)..];
        return IsAlphabet(id) && IsAlphabet(secret);
    }

    public static byte[] Hash(string secret) => SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(secret));

    /// <summary>Compares a presented secret with a stored hash in constant time.</summary>
    public static bool Matches(string secret, byte[] storedHash) => CryptographicOperations.FixedTimeEquals(Hash(secret), storedHash);

    private static bool IsAlphabet(string value)
    {
        foreach (char c in value)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9')))
            {
                return false;
            }
        }
        return true;
    }
}
