import { REJECTED_COMMANDS_QUEUE, SITE_FILTER_PROPERTY, siteSubscriptionName } from '../../shared/bus/entities';
import { PROVIDER_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC } from '../../shared/contracts/messages';
import { LocalServiceBus } from '../../packages/functions-local/src';

/**
 * The provider channel as infra creates it in Azure (infra/modules/service-bus.bicep, provider-site.bicep):
 * the session queue `provider-commands` with duplicate detection, `provider-commands-rejected`, the topic
 * `provider-events` with duplicate detection, and one subscription `site-{siteId}` per registered site with a
 * correlation filter on `siteId`. Same names, lock durations and delivery counts.
 */
export interface ProviderEntityOptions {
    /** `lockDuration` of the queue and the subscriptions. infra: PT1M. */
    lockDurationMs?: number;
    /** `maxDeliveryCount` of provider-commands. infra: 10. */
    commandMaxDeliveryCount?: number;
    /** `duplicateDetectionHistoryTimeWindow`. infra: PT30M. */
    duplicateDetectionWindowMs?: number;
}

/** What infra sets (infra/modules/service-bus.bicep, provider-site.bicep); a unit test compares. */
export const LOCAL_ENTITY_DEFAULTS = {
    lockDurationMs: 60_000,
    maxDeliveryCount: 10,
    duplicateDetectionWindowMs: 30 * 60_000,
};

export function createProviderEntities(broker: LocalServiceBus, options: ProviderEntityOptions = {}): void {
    const lockDurationMs = options.lockDurationMs ?? LOCAL_ENTITY_DEFAULTS.lockDurationMs;
    const duplicateDetectionWindowMs =
        options.duplicateDetectionWindowMs ?? LOCAL_ENTITY_DEFAULTS.duplicateDetectionWindowMs;
    broker.createQueue(PROVIDER_COMMANDS_QUEUE, {
        sessions: true,
        duplicateDetection: true,
        duplicateDetectionWindowMs,
        maxDeliveryCount: options.commandMaxDeliveryCount ?? LOCAL_ENTITY_DEFAULTS.maxDeliveryCount,
        lockDurationMs,
    });
    broker.createQueue(REJECTED_COMMANDS_QUEUE, {
        lockDurationMs,
        maxDeliveryCount: LOCAL_ENTITY_DEFAULTS.maxDeliveryCount,
    });
    broker.createTopic(PROVIDER_EVENTS_TOPIC, { duplicateDetection: true, duplicateDetectionWindowMs });
}

/** What provider-site.bicep does for a site: its subscription, filtered on its id. Idempotent. */
export function createSiteSubscription(
    broker: LocalServiceBus,
    siteId: string,
    options: Pick<ProviderEntityOptions, 'lockDurationMs'> = {},
): boolean {
    const name = siteSubscriptionName(siteId);
    const path = `${PROVIDER_EVENTS_TOPIC}/Subscriptions/${name}`;
    if (broker.hasEntity(path)) return false;
    broker.createSubscription(
        PROVIDER_EVENTS_TOPIC,
        name,
        { properties: { [SITE_FILTER_PROPERTY]: siteId } },
        {
            lockDurationMs: options.lockDurationMs ?? LOCAL_ENTITY_DEFAULTS.lockDurationMs,
            maxDeliveryCount: LOCAL_ENTITY_DEFAULTS.maxDeliveryCount,
        },
    );
    return true;
}
