import { ServiceBusEventPublisher } from '../../shared/bus/eventPublisher';
import { HvrError } from '../../shared/errors';
import { ports } from '../../shared/ports';
import { hostStorage } from '../../tools/host/hostStorage';
import { LocalProviderEventPublisher, providerEventsQueueName } from '../../tools/host/localProviderEvents';
import { LocalBusEnvelope, SessionQueuePump } from '../../tools/host/localSessionQueue';
import { startLocalHost } from '../../tools/host/localHost';
import { uniqueName } from '../support/azurite';

const QUEUE_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;

const grant = (vmId: string, requestId: string) => ({
    vmId,
    requestId,
    grants: [
        {
            diskId: 'os',
            sequence: 1,
            logId: '0b0e6f63-0d0c-4d6e-9a43-2c7a6bb1c3a1',
            blobPath: `replica-logs/s/${vmId}/os/1-0b0e6f63-0d0c-4d6e-9a43-2c7a6bb1c3a1.hrl`,
            url: 'https://example.invalid/replica-logs/x?sig=abc',
            expiresOn: '2030-01-01T00:00:00.000Z',
        },
    ],
});

async function receiveAll(publisher: LocalProviderEventPublisher, siteId: string): Promise<LocalBusEnvelope[]> {
    const received: LocalBusEnvelope[] = [];
    const pump = new SessionQueuePump({
        queue: publisher.queueFor(siteId),
        deliver: async (envelope) => {
            received.push(envelope);
        },
        clock: ports().clock,
        log: () => undefined,
    });
    await pump.drainOnce();
    return received;
}

describe('providerEventsQueueName', () => {
    it('uses the site id as it is when it already fits the queue-name rules', () => {
        expect(providerEventsQueueName('paris-hv')).toBe('provider-events-paris-hv');
    });

    it('folds other site ids to a valid name with a hash, so ids differing only in case get different queues', () => {
        const odd = ['Paris', 'paris_hv.1', 'a--b', 'x'.repeat(128), '-lead', 'Z'];
        const names = odd.map(providerEventsQueueName);
        for (const name of names) {
            expect(name).toMatch(QUEUE_NAME);
            expect(name.length).toBeLessThanOrEqual(63);
            expect(name.startsWith('provider-events-')).toBe(true);
        }
        expect(new Set([...names, providerEventsQueueName('paris')]).size).toBe(names.length + 1);
    });
});

describe('LocalProviderEventPublisher (Azurite)', () => {
    const storage = () => hostStorage(process.env.AZURITE_CONNECTION_STRING!);

    it("sends the Service Bus adapter's envelope to the site's queue, one VM's events in order", async () => {
        const siteId = uniqueName('site');
        const publisher = new LocalProviderEventPublisher(storage());
        for (let i = 1; i <= 3; i++) {
            await publisher.publish({
                type: 'UploadGrant',
                siteId,
                vmId: 'vm-1',
                payload: grant('vm-1', `r${i}`),
                messageId: `grant:${i}`,
            });
        }
        await publisher.publish({
            type: 'StopReplication',
            siteId,
            vmId: 'vm-2',
            payload: { vmId: 'vm-2', reason: 'Protection disabled by operator.' },
        });

        const received = await receiveAll(publisher, siteId);
        const vm1 = received.filter((e) => e.sessionId === 'vm-1');
        expect(vm1.map((e) => (e.body as { requestId: string }).requestId)).toEqual(['r1', 'r2', 'r3']);
        expect(vm1.map((e) => e.sequenceNumber)).toEqual([1, 2, 3]);
        expect(vm1[0]).toMatchObject({
            messageId: 'grant:1',
            contentType: 'application/json',
            subject: 'UploadGrant',
            applicationProperties: { siteId, type: 'UploadGrant', version: 1 },
            body: { type: 'UploadGrant', version: 1, vmId: 'vm-1' },
        });
        const stop = received.find((e) => e.sessionId === 'vm-2');
        expect(stop?.body).toEqual({
            type: 'StopReplication',
            version: 1,
            vmId: 'vm-2',
            reason: 'Protection disabled by operator.',
        });
        // Another site's provider sees none of it.
        expect(await receiveAll(publisher, uniqueName('other'))).toEqual([]);
    });

    it('uses the site session for site-level events', async () => {
        const siteId = uniqueName('site');
        const publisher = new LocalProviderEventPublisher(storage());
        await publisher.publish({
            type: 'PolicyChanged',
            siteId,
            payload: {
                policyName: 'gold',
                vmIds: [],
                copyFrequencySeconds: 300,
                appConsistentSnapshotFrequencyHours: 0,
                bandwidth: {
                    timeZone: 'UTC',
                    workDays: ['Mon'],
                    workHoursStart: '08:00',
                    workHoursEnd: '18:00',
                },
            },
        });
        const [event] = await receiveAll(publisher, siteId);
        expect(event?.sessionId).toBe(`site:${siteId}`);
    });

    it('refuses an event its schema rejects and enqueues nothing', async () => {
        const siteId = uniqueName('site');
        const publisher = new LocalProviderEventPublisher(storage());
        const sending = publisher.publish({
            type: 'StopReplication',
            siteId,
            vmId: 'vm-1',
            payload: { vmId: 'vm-1' },
        });
        await expect(sending).rejects.toBeInstanceOf(HvrError);
        await expect(sending).rejects.toMatchObject({ code: 'MESSAGE_INVALID' });
        expect(await receiveAll(publisher, siteId)).toEqual([]);
    });
});

describe('the local host wires the publisher', () => {
    it('sets ports().providerEvents() to the local queues unless PROVIDER_BUS is configured', async () => {
        const host = await startLocalHost({
            appRoot: __dirname,
            modules: [],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            settings: { PROVIDER_BUS: '' },
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        try {
            expect(host.providerEvents).toBeDefined();
            expect(ports().providerEvents()).toBe(host.providerEvents);
        } finally {
            await host.stop();
        }
        // Stopping restores the default, which asks for a bus.
        expect(() => ports().providerEvents()).toThrow(/PROVIDER_BUS/);

        const withBus = await startLocalHost({
            appRoot: __dirname,
            modules: [],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            settings: { PROVIDER_BUS: 'Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=a;' },
            blobScanIntervalMs: 0,
            timers: false,
            queuePolling: false,
            log: () => undefined,
        });
        try {
            // With a Service Bus configured, events go to its topic, not to the local queues.
            expect(withBus.providerEvents).toBeUndefined();
            expect(ports().providerEvents()).toBeInstanceOf(ServiceBusEventPublisher);
        } finally {
            await withBus.stop();
        }
    });
});
