import { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import { PROVIDER_EVENTS_TOPIC, siteSessionId } from '../contracts/messages';
import { OutgoingProviderEvent, ProviderEventPublisher, providerEventBody } from '../contracts/publisher';
import { deadline } from '../storage/deadline';
import { DEFAULT_BUS_TIMEOUT_MS } from './busClient';

export interface ServiceBusEventPublisherOptions {
    topic?: string;
    /** Upper bound on one publish, retries included. */
    timeoutInMs?: number;
}

/**
 * Sends provider events to the `provider-events` topic. Each message carries the application properties the
 * per-site subscriptions filter on (`siteId`) and that providers dispatch on (`type`, `version`), the VM id as
 * session id so one VM's events stay in order on a session-enabled subscription, and the caller's idempotency key
 * as message id so the topic's duplicate detection drops a re-send.
 */
export class ServiceBusEventPublisher implements ProviderEventPublisher {
    private readonly sender: ServiceBusSender;
    private readonly timeoutInMs: number;

    constructor(client: ServiceBusClient, options: ServiceBusEventPublisherOptions = {}) {
        this.sender = client.createSender(options.topic ?? PROVIDER_EVENTS_TOPIC);
        this.timeoutInMs = options.timeoutInMs ?? DEFAULT_BUS_TIMEOUT_MS;
    }

    async publish(event: OutgoingProviderEvent, options: { abortSignal?: AbortSignal } = {}): Promise<void> {
        const body = providerEventBody(event);
        await this.sender.sendMessages(
            {
                body: Buffer.from(JSON.stringify(body), 'utf8'),
                contentType: 'application/json',
                subject: body.type,
                messageId: event.messageId,
                sessionId: event.vmId ?? siteSessionId(event.siteId),
                applicationProperties: { siteId: event.siteId, type: body.type, version: body.version },
            },
            { abortSignal: deadline(this.timeoutInMs, options.abortSignal) },
        );
    }

    async close(): Promise<void> {
        await this.sender.close();
    }
}
