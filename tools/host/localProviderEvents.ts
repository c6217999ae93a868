import { createHash } from 'node:crypto';
import { siteSessionId } from '../../shared/contracts/messages';
import { OutgoingProviderEvent, ProviderEventPublisher, providerEventBody } from '../../shared/contracts/publisher';
import { Clock, systemClock } from '../../shared/ports';
import { HostStorage } from './hostStorage';
import { LocalSessionQueue } from './localSessionQueue';

const QUEUE_PREFIX = 'provider-events-';
/** Azure Storage queue names: 3–63 characters, lower-case letters, digits and single hyphens. */
const MAX_QUEUE_NAME = 63;
const VALID_QUEUE_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;

/**
 * The local stand-in for a site's subscription of the `provider-events` topic: the Storage queue
 * `provider-events-{siteId}`. A site id that is not already a valid queue-name tail (upper case, dots,
 * underscores, double hyphens, too long) is folded to one and suffixed with a hash of the original, so two
 * sites never share a queue.
 */
export function providerEventsQueueName(siteId: string): string {
    const direct = QUEUE_PREFIX + siteId;
    if (direct.length <= MAX_QUEUE_NAME && VALID_QUEUE_NAME.test(direct)) return direct;
    const hash = createHash('sha256').update(siteId, 'utf8').digest('hex').slice(0, 8);
    const room = MAX_QUEUE_NAME - QUEUE_PREFIX.length - hash.length - 1;
    const folded = siteId
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .slice(0, room)
        .replace(/^-+|-+$/g, '');
    return `${QUEUE_PREFIX}${folded === '' ? '' : folded + '-'}${hash}`;
}

/**
 * Publishes provider events to per-site Storage queues in the host's storage (AzureWebJobsStorage), used by
 * the local host when no PROVIDER_BUS is configured. Each message is the envelope the local provider queue
 * uses (tools/host/localSessionQueue.ts) carrying what the Service Bus adapter (shared/bus/eventPublisher.ts)
 * puts on the wire: the schema-checked JSON body, `contentType`, `subject` = type, the caller's `messageId`,
 * the VM id (or `site:{siteId}`) as session id, and application properties `siteId`, `type`, `version`.
 * Per-session sequence numbers keep one VM's events in order for a receiver (SessionQueuePump).
 * There is no duplicate detection: providers must treat a repeated `messageId` as a repeat.
 */
export class LocalProviderEventPublisher implements ProviderEventPublisher {
    private readonly queues = new Map<string, LocalSessionQueue>();

    constructor(
        private readonly storage: HostStorage,
        private readonly clock: Clock = systemClock,
    ) {}

    /** The queue a site's provider reads (created on first use). */
    queueFor(siteId: string): LocalSessionQueue {
        const name = providerEventsQueueName(siteId);
        let queue = this.queues.get(name);
        if (!queue) {
            queue = new LocalSessionQueue(name, this.storage, this.clock);
            this.queues.set(name, queue);
        }
        return queue;
    }

    async publish(event: OutgoingProviderEvent): Promise<void> {
        const body = providerEventBody(event);
        await this.queueFor(event.siteId).send(body, {
            messageId: event.messageId,
            sessionId: event.vmId ?? siteSessionId(event.siteId),
            contentType: 'application/json',
            subject: body.type,
            applicationProperties: { siteId: event.siteId, type: body.type, version: body.version },
        });
    }
}
