import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REJECTED_COMMANDS_QUEUE, SITE_FILTER_PROPERTY, siteSubscriptionName } from '../../../shared/bus/entities';
import { PROVIDER_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC } from '../../../shared/contracts/messages';
import { LOCAL_ENTITY_DEFAULTS } from '../../../tools/platform/providerEntities';

const infra = (file: string) => readFileSync(join(__dirname, '../../../infra/modules', file), 'utf8');

/** A Bicep ISO 8601 duration such as PT1M or PT30M in milliseconds. */
function durationMs(text: string): number {
    const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$/.exec(text);
    if (!m) throw new Error(`not a duration: ${text}`);
    return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

describe('the local broker creates what infra creates in Azure', () => {
    const serviceBus = infra('service-bus.bicep');
    const site = infra('provider-site.bicep');

    it('with the same entity names', () => {
        expect(serviceBus).toContain(`var commandsQueueName = '${PROVIDER_COMMANDS_QUEUE}'`);
        expect(serviceBus).toContain(`var eventsTopicName = '${PROVIDER_EVENTS_TOPIC}'`);
        expect(serviceBus).toContain(`var rejectedCommandsQueueName = '${REJECTED_COMMANDS_QUEUE}'`);
        expect(site).toContain(`name: '${siteSubscriptionName('${siteId}')}'`);
        expect(site).toMatch(new RegExp(`filterType: 'CorrelationFilter'[\\s\\S]*${SITE_FILTER_PROPERTY}: siteId`));
    });

    it('with the same lock duration, delivery count and duplicate-detection window', () => {
        const window = /param duplicateDetectionWindow string = '([^']+)'/.exec(serviceBus)?.[1];
        expect(durationMs(window!)).toBe(LOCAL_ENTITY_DEFAULTS.duplicateDetectionWindowMs);
        const deliveries = /param commandMaxDeliveryCount int = (\d+)/.exec(serviceBus)?.[1];
        expect(Number(deliveries)).toBe(LOCAL_ENTITY_DEFAULTS.maxDeliveryCount);
        for (const text of [serviceBus, site]) {
            for (const [, lock] of text.matchAll(/lockDuration: '([^']+)'/g)) {
                expect(durationMs(lock!)).toBe(LOCAL_ENTITY_DEFAULTS.lockDurationMs);
            }
        }
        expect(serviceBus).toMatch(/requiresSession: true/);
        expect(serviceBus.match(/requiresDuplicateDetection: true/g)).toHaveLength(2);
    });
});
