using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Hvr.ReferenceProvider;

/// <summary>The management API (docs/api.md) with the function key in <c>x-functions-key</c>.</summary>
public sealed class ManagementApi : IDisposable
{
    private readonly HttpClient http;
    private readonly string baseUrl;

    public ManagementApi(string baseUrl, string functionKey)
    {
        this.baseUrl = baseUrl.TrimEnd('/');
        http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Add("x-functions-key", functionKey);
    }

    public async Task<(int Status, JsonNode? Body)> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, baseUrl + path);
        if (body is not null) request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        JsonNode? parsed = null;
        if (text.Length > 0)
        {
            try { parsed = JsonNode.Parse(text); }
            catch (System.Text.Json.JsonException) { parsed = JsonValue.Create(text); }
        }
        return ((int)response.StatusCode, parsed);
    }

    /// <summary>Sends and requires one of the expected statuses; otherwise fails naming the API's error.</summary>
    public async Task<JsonNode?> ExpectAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct, params int[] expected)
    {
        var (status, answer) = await SendAsync(method, path, body, ct);
        if (!expected.Contains(status))
            throw new InvalidOperationException($"{method} {path} answered {status}: {answer?.ToJsonString()}");
        return answer;
    }

    public void Dispose() => http.Dispose();
}
