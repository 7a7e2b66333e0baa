using System.Text;
using System.Text.Json;

namespace MeshNet.Coordination.Policy;

/// <summary>
/// Reads HuJSON (JSON with <c>//</c> and <c>/* */</c> comments and trailing commas) into a
/// <see cref="PolicyValue"/> tree that records every value's line and column. Any malformed
/// input gives a <see cref="PolicyException"/>, never another exception. Pure; thread-safe.
/// </summary>
internal static class HuJsonReader
{
    /// <summary>The largest policy accepted, in characters.</summary>
    public const int MaxLength = 1 << 20;

    private const int MaxDepth = 32;

    public static PolicyValue Parse(string text)
    {
        if (text.Length > MaxLength)
        {
            throw new PolicyException(1, 1, $"the policy is {text.Length} characters; the limit is {MaxLength}");
        }
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new PolicyException(1, 1, "the policy is empty (expected an object)");
        }
        var bytes = Encoding.UTF8.GetBytes(text);
        var positions = new Positions(bytes);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions
        {
            CommentHandling = JsonCommentHandling.Skip,
            AllowTrailingCommas = true,
            MaxDepth = MaxDepth,
        });
        try
        {
            if (!reader.Read())
            {
                throw new PolicyException(1, 1, "the policy is empty (expected an object)");
            }
            var root = ReadValue(ref reader, positions);
            if (reader.Read())
            {
                var (line, column) = positions.At(reader.TokenStartIndex);
                throw new PolicyException(line, column, "unexpected content after the policy object");
            }
            return root;
        }
        catch (JsonException exception)
        {
            int line = (int)Math.Min(int.MaxValue - 1, (exception.LineNumber ?? 0)) + 1;
            long bytePosition = exception.BytePositionInLine ?? 0;
            int column = positions.ColumnOf(line, bytePosition);
            throw new PolicyException(line, column, Describe(exception));
        }
        catch (InvalidOperationException)
        {
            // A string with an escape that does not decode (a lone surrogate).
            var (line, column) = positions.At(reader.TokenStartIndex);
            throw new PolicyException(line, column, "a string contains an invalid escape sequence");
        }
    }

    private static PolicyValue ReadValue(ref Utf8JsonReader reader, Positions positions)
    {
        var (line, column) = positions.At(reader.TokenStartIndex);
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                var obj = new PolicyValue(PolicyValueKind.Object, line, column);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    var (keyLine, keyColumn) = positions.At(reader.TokenStartIndex);
                    var name = reader.GetString()!;
                    if (!seen.Add(name))
                    {
                        throw new PolicyException(keyLine, keyColumn, $"duplicate key \"{name}\"");
                    }
                    reader.Read();
                    obj.Members.Add(new PolicyMember(name, keyLine, keyColumn, ReadValue(ref reader, positions)));
                }
                return obj;
            case JsonTokenType.StartArray:
                var array = new PolicyValue(PolicyValueKind.Array, line, column);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    array.Items.Add(ReadValue(ref reader, positions));
                }
                return array;
            case JsonTokenType.String:
                return new PolicyValue(PolicyValueKind.String, line, column, reader.GetString()!);
            case JsonTokenType.Number:
                return new PolicyValue(PolicyValueKind.Number, line, column, Encoding.UTF8.GetString(reader.ValueSpan));
            case JsonTokenType.True:
                return new PolicyValue(PolicyValueKind.Boolean, line, column, "true");
            case JsonTokenType.False:
                return new PolicyValue(PolicyValueKind.Boolean, line, column, "false");
            default:
                return new PolicyValue(PolicyValueKind.Null, line, column, "null");
        }
    }

    /// <summary>The reader's message without its own (byte-based) position suffix.</summary>
    private static string Describe(JsonException exception)
    {
        var message = exception.Message;
        int cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut >= 0)
        {
            message = message[..cut];
        }
        message = message.Trim();
        return message.Length == 0 ? "malformed JSON" : $"malformed JSON: {message}";
    }

    /// <summary>Maps byte offsets of the UTF-8 text to 1-based lines and UTF-16 columns.</summary>
    private sealed class Positions
    {
        private readonly byte[] _bytes;
        private readonly List<int> _lineStarts = [0];

        public Positions(byte[] bytes)
        {
            _bytes = bytes;
            for (int i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] == (byte)'\n')
                {
                    _lineStarts.Add(i + 1);
                }
            }
        }

        public (int Line, int Column) At(long offset)
        {
            int index = _lineStarts.BinarySearch((int)Math.Clamp(offset, 0, _bytes.Length));
            int line = index >= 0 ? index : ~index - 1;
            return (line + 1, Column(_lineStarts[line], (int)offset));
        }

        public int ColumnOf(int line, long bytePositionInLine)
        {
            if (line < 1 || line > _lineStarts.Count)
            {
                return 1;
            }
            int start = _lineStarts[line - 1];
            long end = Math.Clamp(start + bytePositionInLine, start, _bytes.Length);
            return Column(start, (int)end);
        }

        private int Column(int start, int end)
        {
            int column = 1;
            for (int i = start; i < end && i < _bytes.Length; i++)
            {
                byte b = _bytes[i];
                if ((b & 0xC0) == 0x80)
                {
                    continue; // a continuation byte
                }
                column += b >= 0xF0 ? 2 : 1; // four-byte sequences are surrogate pairs in UTF-16
            }
            return column;
        }
    }
}
