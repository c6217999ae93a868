using System.Net.Http.Headers;
using System.Text;
using Newtonsoft.Json.Linq;

namespace Hvr.Dtfx;

/// <summary>
/// Carries the extension's calls to the Node process over the loopback bridge: the orchestration context JSON
/// out, the orchestrator state JSON back; an activity's input out, its result back. A failure in Node comes back
/// as <c>{"error": {...}}</c> and is rethrown in the shape the Functions host gives a worker failure, which is
/// what the extension parses (the out-of-process state after <c>$OutOfProcData$:</c>, the message after
/// <c>Exception:</c>).
/// </summary>
public static class Dispatch
{
    private static HttpClient? http;
    private static TaskCompletionSource<string> client = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static void Configure(Uri bridge, string token, TimeSpan timeout)
    {
        http = new HttpClient { BaseAddress = bridge, Timeout = timeout };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public static Task<string> ClientJson => client.Task;

    public static void CaptureClient(string json) => client.TrySetResult(json);

    public static async Task<string> Orchestrate(string name, string contextJson)
    {
        var reply = await Post("orchestrator/" + Uri.EscapeDataString(name), contextJson);
        return reply["result"]?.ToString(Newtonsoft.Json.Formatting.None) ?? "null";
    }

    public static async Task<JToken> RunActivity(string name, JToken input)
    {
        var reply = await Post("activity/" + Uri.EscapeDataString(name), (input ?? JValue.CreateNull()).ToString(Newtonsoft.Json.Formatting.None));
        return reply["result"] ?? JValue.CreateNull();
    }

    public static async Task<JObject> Get(string path)
    {
        using var response = await Http.GetAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"Bridge GET {path}: HTTP {(int)response.StatusCode} {text}");
        return JObject.Parse(text);
    }

    private static HttpClient Http => http ?? throw new InvalidOperationException("The bridge is not configured");

    private static async Task<JObject> Post(string path, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"Bridge POST {path}: HTTP {(int)response.StatusCode} {text}");
        var reply = JObject.Parse(text);
        if (reply["error"] is JObject error)
        {
            var message = error["message"]?.ToString() ?? "(no message)";
            var stack = error["stack"]?.ToString() ?? "";
            // The Functions host's RpcException text for a worker failure.
            throw new WorkerFailureException($"Result: Failure\nException: {message}\nStack: {stack}");
        }
        return reply;
    }
}

/// <summary>A function that failed in the Node process.</summary>
public sealed class WorkerFailureException(string message) : Exception(message);
