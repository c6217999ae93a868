using Hvr.Dtfx;
using Microsoft.Azure.WebJobs;
using Microsoft.Azure.WebJobs.Extensions.DurableTask;
using Microsoft.Azure.WebJobs.Host.Config;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// The host of the real Durable Task engine for the Node app: WebJobs SDK + the Durable Functions extension on
// its Azure Storage backend. Started by the Node process (packages/functions-local/src/durable/dtfx.ts), which passes everything in
// environment variables and serves the bridge; see README.md.
static string Required(string name) =>
    Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? value
        : throw new InvalidOperationException($"{name} is not set: the Node process that starts this host sets it");

var bridge = new Uri(Required("HVR_DTFX_BRIDGE_URL"));
var storage = Required("AzureWebJobsStorage");
var taskHub = Required("HVR_DTFX_TASK_HUB");
var pollMs = int.Parse(Environment.GetEnvironmentVariable("HVR_DTFX_MAX_POLL_MS") ?? "30000");
var activityTimeout = TimeSpan.FromMinutes(double.Parse(Environment.GetEnvironmentVariable("HVR_DTFX_ACTIVITY_TIMEOUT_MIN") ?? "30"));
// The public webhook base the status/management links name (the app's HTTP front door serves /runtime/...).
var webhookBase = new Uri(Environment.GetEnvironmentVariable("HVR_DTFX_WEBHOOK_BASE") ?? "http://127.0.0.1:7071/runtime/webhooks/durabletask");
var logLevel = Enum.Parse<LogLevel>(Environment.GetEnvironmentVariable("HVR_DTFX_LOG_LEVEL") ?? "Warning");
// The extension picks its out-of-process protocol (the orchestrator shim) and its local RPC endpoint from this.
Environment.SetEnvironmentVariable("FUNCTIONS_WORKER_RUNTIME", "node");

// Never outlive the Node process that started this host, however it ended (even during start-up).
_ = ParentGone().ContinueWith(_ => Environment.Exit(2), TaskScheduler.Default);

Dispatch.Configure(bridge, Required("HVR_DTFX_BRIDGE_TOKEN"), activityTimeout + TimeSpan.FromMinutes(1));
var functions = await Dispatch.Get("functions");
var orchestrators = functions["orchestrators"]!.ToObject<List<string>>()!;
var activities = functions["activities"]!.ToObject<List<string>>()!;
var functionClass = FunctionEmitter.Emit(orchestrators, activities);

var host = new HostBuilder()
    .ConfigureAppConfiguration(config => config.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["AzureWebJobsStorage"] = storage,
    }))
    .ConfigureLogging(logging => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(logLevel))
    .ConfigureWebJobs(webJobs =>
    {
        webJobs.AddDurableTask(options =>
        {
            options.HubName = taskHub;
            options.StorageProvider["maxQueuePollingInterval"] = TimeSpan.FromMilliseconds(pollMs).ToString();
            options.LocalRpcEndpointEnabled = true;
        });
    })
    .ConfigureServices(services =>
    {
        services.AddSingleton<ITypeLocator>(new FixedTypeLocator(functionClass));
        services.AddSingleton<IWebHookProvider>(new FixedWebHookProvider(webhookBase));
    })
    .Build();

await host.StartAsync();
var jobHost = host.Services.GetRequiredService<IJobHost>();
await jobHost.CallAsync(FunctionEmitter.ClientFunctionName);
var clientJson = await Dispatch.ClientJson;
// One line the Node process waits for: the client payload `[DurableClient] string` hands out.
Console.Out.WriteLine("HVR_DTFX_READY " + Newtonsoft.Json.Linq.JObject.Parse(clientJson).ToString(Newtonsoft.Json.Formatting.None));
Console.Out.Flush();

// Runs until the Node process closes stdin (or dies), then stops cleanly.
var stdinClosed = Task.Run(async () =>
{
    var stdin = Console.OpenStandardInput();
    var buffer = new byte[256];
    while (await stdin.ReadAsync(buffer) > 0) { }
});
var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
var stopping = new TaskCompletionSource();
lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
await Task.WhenAny(stdinClosed, stopping.Task);
await host.StopAsync(TimeSpan.FromSeconds(10));

static async Task ParentGone()
{
    if (!int.TryParse(Environment.GetEnvironmentVariable("HVR_DTFX_PARENT_PID"), out var parentPid)) await Task.Delay(Timeout.Infinite);
    for (;;)
    {
        await Task.Delay(1000);
        try
        {
            using var parent = System.Diagnostics.Process.GetProcessById(parentPid);
            if (parent.HasExited) return;
        }
        catch (ArgumentException)
        {
            return;
        }
    }
}

internal sealed class FixedTypeLocator(Type type) : ITypeLocator
{
    public IReadOnlyList<Type> GetTypes() => [type];
}

/// <summary>What the Functions host's HTTP extension would provide: the public base of the durable webhooks.</summary>
internal sealed class FixedWebHookProvider(Uri baseUri) : IWebHookProvider
{
    public Uri GetUrl(IExtensionConfigProvider extension) => baseUri;
}
