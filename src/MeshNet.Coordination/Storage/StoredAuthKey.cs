namespace MeshNet.Coordination.Storage;

/// <summary>
/// An auth key as stored: only a hash of its secret is kept (the secret is shown once, at
/// creation). Byte arrays compare by reference in the record's equality.
/// </summary>
/// <param name="Id">The public identifier (the middle part of <c>mnkey-&lt;id&gt;-&lt;secret&gt;</c>).</param>
/// <param name="Tailnet">The tailnet nodes join with it.</param>
/// <param name="SecretHash">SHA-256 of the secret part (the secret has 160+ bits of entropy).</param>
/// <param name="Reusable">False for a one-off key (one registration).</param>
/// <param name="Ephemeral">Nodes registered with it are ephemeral.</param>
/// <param name="Tags">Tags every node registered with it gets.</param>
/// <param name="Created">When it was created.</param>
/// <param name="Expires">After this it registers nothing.</param>
/// <param name="Uses">How many registrations used it.</param>
/// <param name="Revoked">Revoked by an administrator.</param>
/// <param name="Description">Free text for administrators.</param>
/// <param name="User">The user nodes registered with it belong to (empty: none).</param>
public sealed record StoredAuthKey(
    string Id,
    string Tailnet,
    byte[] SecretHash,
    bool Reusable,
    bool Ephemeral,
    IReadOnlyList<string> Tags,
    DateTimeOffset Created,
    DateTimeOffset Expires,
    int Uses,
    bool Revoked,
    string Description,
    string User = "");
