using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Hvr.ReferenceProvider;

/// <summary>The provider contract's rules (docs/provider-contract.md), as a provider in another language reads them.</summary>
public static class Contract
{
    public const string CommandsQueue = "provider-commands";
    public const string EventsTopic = "provider-events";
    public static string SiteSubscription(string siteId) => $"site-{siteId}";
    public static string SiteSession(string siteId) => $"site:{siteId}";

    /// <summary>Application property timestamp: ISO 8601 UTC with milliseconds.</summary>
    public static string Timestamp(DateTime utc) => utc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>An instant in a body or in metadata.</summary>
    public static string Instant(DateTime utc) => utc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// Canonical JSON (RFC 8785 for what the schemas allow): members sorted by key in UTF-16 code unit order, no
    /// whitespace, strings escaped as JSON, integers in plain decimal, array order kept.
    /// </summary>
    public static string Canonical(JsonNode? node)
    {
        // Through the parsed form, so that values built in code and values read from JSON are written alike.
        using var doc = JsonDocument.Parse(node?.ToJsonString() ?? "null");
        var sb = new StringBuilder();
        WriteCanonical(doc.RootElement, sb);
        return sb.ToString();
    }

    private static void WriteCanonical(JsonElement element, StringBuilder sb)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                sb.Append('{');
                var first = true;
                foreach (var p in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(p.Name, sb);
                    sb.Append(':');
                    WriteCanonical(p.Value, sb);
                }
                sb.Append('}');
                return;
            case JsonValueKind.Array:
                sb.Append('[');
                var i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (i++ > 0) sb.Append(',');
                    WriteCanonical(item, sb);
                }
                sb.Append(']');
                return;
            case JsonValueKind.String: WriteString(element.GetString()!, sb); return;
            case JsonValueKind.True: sb.Append("true"); return;
            case JsonValueKind.False: sb.Append("false"); return;
            case JsonValueKind.Null: sb.Append("null"); return;
            case JsonValueKind.Number:
                if (!element.TryGetInt64(out var n))
                    throw new ArgumentException($"The contract's numbers are whole numbers; got {element.GetRawText()}.");
                sb.Append(n.ToString(CultureInfo.InvariantCulture));
                return;
        }
        throw new ArgumentException($"Not a JSON value: {element.ValueKind}.");
    }

    private static void WriteString(string s, StringBuilder sb)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>base64 HMAC-SHA256 over the seven lines of the string to sign.</summary>
    public static string Sign(byte[] key, string siteId, string keyId, string timestamp, string messageId, string sessionId, JsonNode body)
    {
        var bodyHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical(body))));
        var stringToSign = string.Join('\n', "HVR-HMAC-SHA256", siteId, keyId, timestamp, messageId, sessionId, bodyHash);
        return Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
    }
}
