import { InvocationContext } from '@azure/functions';
import { ServiceBusClient } from '@azure/service-bus';
import * as df from 'durable-functions';
import { busClientOptions, serviceBusClientFromSetting } from '../../shared/bus/busClient';
import { ServiceBusCommandReceiver } from '../../shared/bus/commandReceiver';
import { ChannelLog, handleProviderCommand } from '../../shared/contracts/commandHandler';
import { providerCommandPorts } from '../../shared/contracts/channel';
import { PROVIDER_COMMANDS_QUEUE } from '../../shared/contracts/messages';
import type {
    DurableClientSource,
    RegisteredFunction,
    ServiceBusHostSettings,
} from '../../packages/functions-local/src';

/** Whether a Service Bus connection setting names a real namespace (connection string or managed identity). */
export function serviceBusConfigured(settings: Record<string, string>, connection: string): boolean {
    return !!settings[connection] || !!settings[`${connection}__fullyQualifiedNamespace`];
}

/** One client per connection setting, shared by the receivers and the event publisher; closed together. */
export class ServiceBusClients {
    private readonly clients = new Map<string, ServiceBusClient>();

    constructor(private readonly settings: Record<string, string>) {}

    get(connection: string): ServiceBusClient {
        let client = this.clients.get(connection);
        if (!client) {
            client = serviceBusClientFromSetting(connection, this.settings, busClientOptions());
            this.clients.set(connection, client);
        }
        return client;
    }

    async close(): Promise<void> {
        const clients = [...this.clients.values()];
        this.clients.clear();
        await Promise.all(clients.map((c) => c.close()));
    }
}

/**
 * A durable client over the runtime, built the way `df.getClient(context)` builds it inside a function, for
 * code that runs outside an invocation (the command receiver).
 */
export async function durableClientOf(runtime: DurableClientSource): Promise<df.DurableClient> {
    const input = df.input.durableClient();
    const context = new InvocationContext({
        functionName: 'localHostServiceBusReceiver',
        options: { trigger: { name: 'message', type: 'serviceBusTrigger' }, extraInputs: [input], extraOutputs: [] },
    });
    context.extraInputs.set(input, await runtime.clientBinding());
    return df.getClient(context);
}

export interface BusReceiverOptions {
    fn: RegisteredFunction;
    client: ServiceBusClient;
    durableClient: df.DurableClient;
    log: (line: string) => void;
    /** host.json's extensions.serviceBus, as the extension reads it: settlement, concurrency, lock renewal. */
    settings?: ServiceBusHostSettings;
    /** How long a receive waits for a session, and for more messages in it. Default 5 s. */
    receiveWaitMs?: number;
    /** Pause after a failure before accepting sessions again. Default 2 s. */
    backoffMs?: number;
}

/**
 * The receiver behind the provider command trigger, on the namespace its connection names (the local broker or
 * Azure): each message goes through the shared command handler with the runtime's durable client and is settled
 * by its outcome as host.json says: with `autoCompleteMessages` on, complete or abandon; off, left to expire.
 * A rejected command lands in the queue's own dead-letter sub-queue with its reason and description (the
 * Functions trigger cannot do that and forwards to provider-commands-rejected instead; see
 * functions/providerCommands.ts). Sessions are worked on `maxConcurrentSessions` at a time, each taking
 * `max(1, prefetchCount)` messages per receive, with locks renewed for `maxAutoLockRenewalDuration`.
 */
export function providerCommandReceiver(options: BusReceiverOptions): ServiceBusCommandReceiver {
    const line = (text: string, fields?: Record<string, unknown>) =>
        options.log(`[${options.fn.name}] ${text}${fields ? ' ' + JSON.stringify(fields) : ''}`);
    const channelLog: ChannelLog = { info: line, warn: line };
    return new ServiceBusCommandReceiver(
        options.client,
        (delivery) =>
            handleProviderCommand(
                delivery,
                providerCommandPorts(() => options.durableClient, channelLog),
            ),
        {
            queue: PROVIDER_COMMANDS_QUEUE,
            maxWaitTimeInMs: options.receiveWaitMs,
            backoffMs: options.backoffMs,
            log: channelLog,
            ...(options.settings && {
                autoCompleteMessages: options.settings.autoCompleteMessages,
                maxConcurrentSessions: options.settings.maxConcurrentSessions,
                batchSize: Math.max(1, options.settings.prefetchCount),
                maxAutoLockRenewalDurationInMs: options.settings.maxAutoLockRenewalDurationMs,
            }),
        },
    );
}
