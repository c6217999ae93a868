using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Messaging.ServiceBus;

namespace Hvr.ReferenceProvider;

/// <summary>A site's end of the provider channel: signed commands out, events in from the site's subscription.</summary>
public sealed class Channel : IAsyncDisposable
{
    private readonly ServiceBusClient client;
    private readonly ServiceBusSender sender;
    private readonly string siteId;
    private readonly string keyId;
    private readonly byte[] key;
    private readonly Action<string> log;
    private readonly List<JsonObject> events = new();
    private readonly CancellationTokenSource stop = new();
    private Task? pump;
    private ServiceBusReceiver? receiver;

    public Channel(string connectionString, string siteId, string keyId, byte[] key, Action<string> log)
    {
        // Every call has a deadline: 30 s per try, 3 retries.
        client = new ServiceBusClient(connectionString, new ServiceBusClientOptions
        {
            RetryOptions = new ServiceBusRetryOptions { TryTimeout = TimeSpan.FromSeconds(30), MaxRetries = 3 },
        });
        sender = client.CreateSender(Contract.CommandsQueue);
        this.siteId = siteId;
        this.keyId = keyId;
        this.key = key;
        this.log = log;
    }

    /// <summary>Signs and sends one command in its session; the broker numbers it.</summary>
    public async Task<string> SendAsync(JsonObject body, string sessionId, CancellationToken ct, string? messageId = null)
    {
        messageId ??= Guid.NewGuid().ToString();
        var timestamp = Contract.Timestamp(DateTime.UtcNow);
        var signature = Contract.Sign(key, siteId, keyId, timestamp, messageId, sessionId, body);
        var message = new ServiceBusMessage(Encoding.UTF8.GetBytes(body.ToJsonString()))
        {
            MessageId = messageId,
            SessionId = sessionId,
            ContentType = "application/json",
        };
        message.ApplicationProperties["siteId"] = siteId;
        message.ApplicationProperties["keyId"] = keyId;
        message.ApplicationProperties["timestamp"] = timestamp;
        message.ApplicationProperties["signature"] = signature;
        await sender.SendMessageAsync(message, ct);
        log($"sent {body["type"]} ({messageId}) in session {sessionId}");
        return messageId;
    }

    /// <summary>
    /// Starts reading the site's subscription in peek-lock. The subscription appears shortly after the site is
    /// registered, so a missing one is waited for (up to <paramref name="timeout"/>).
    /// </summary>
    public async Task StartReceivingAsync(TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        for (var attempt = 1; ; attempt++)
        {
            var r = client.CreateReceiver(Contract.EventsTopic, Contract.SiteSubscription(siteId),
                new ServiceBusReceiverOptions { ReceiveMode = ServiceBusReceiveMode.PeekLock });
            try
            {
                // Opens the link: a missing subscription fails here.
                await r.PeekMessageAsync(cancellationToken: ct);
                receiver = r;
                break;
            }
            catch (ServiceBusException e) when (e.Reason == ServiceBusFailureReason.MessagingEntityNotFound && DateTime.UtcNow < deadline)
            {
                await r.DisposeAsync();
                log($"subscription {Contract.SiteSubscription(siteId)} not there yet (attempt {attempt}); waiting");
                await Task.Delay(500, ct);
            }
        }
        pump = Task.Run(() => PumpAsync(stop.Token));
    }

    private async Task PumpAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            IReadOnlyList<ServiceBusReceivedMessage> batch;
            try
            {
                batch = await receiver!.ReceiveMessagesAsync(10, TimeSpan.FromSeconds(1), ct);
            }
            catch (OperationCanceledException) { return; }
            catch (Exception e)
            {
                log($"receive failed, trying again: {e.Message}");
                await Task.Delay(500, CancellationToken.None);
                continue;
            }
            foreach (var m in batch)
            {
                JsonObject? body = null;
                try { body = JsonNode.Parse(m.Body.ToString()) as JsonObject; }
                catch (JsonException) { }
                if (body is null)
                {
                    // Not ours to act on: settle it so it does not come back.
                    log($"event {m.MessageId} is not a JSON object; dead-lettering it");
                    await receiver!.DeadLetterMessageAsync(m, "NOT_JSON", "The event body is not a JSON object.", CancellationToken.None);
                    continue;
                }
                lock (events) events.Add(body);
                log($"event {body["type"]} ({m.MessageId}, sequence {m.SequenceNumber})");
                await receiver!.CompleteMessageAsync(m, CancellationToken.None);
            }
        }
    }

    /// <summary>The first event (received so far or later) that matches, within the timeout.</summary>
    public async Task<JsonObject> WaitForEventAsync(string what, Func<JsonObject, bool> match, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            lock (events)
            {
                var found = events.FirstOrDefault(match);
                if (found is not null) return found;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"No {what} event within {timeout.TotalSeconds} s.");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>What is in the commands queue's dead-letter sub-queue (local broker: readable; Azure: the rejected queue).</summary>
    public async Task<List<string>> DeadLettersAsync(CancellationToken ct)
    {
        await using var dlq = client.CreateReceiver(Contract.CommandsQueue, new ServiceBusReceiverOptions { SubQueue = SubQueue.DeadLetter });
        var found = new List<string>();
        foreach (var m in await dlq.PeekMessagesAsync(100, cancellationToken: ct))
            found.Add($"{m.MessageId} (session {m.SessionId}): {m.DeadLetterReason}: {m.DeadLetterErrorDescription}");
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        stop.Cancel();
        if (pump is not null) await pump;
        if (receiver is not null) await receiver.DisposeAsync();
        await sender.DisposeAsync();
        await client.DisposeAsync();
    }
}
