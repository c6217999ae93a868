import { ServiceBusClient, ServiceBusReceivedMessage } from '@azure/service-bus';
import { busClientOptions } from '../../shared/bus/busClient';
import { ServiceBusEventPublisher } from '../../shared/bus/eventPublisher';
import { REJECTED_COMMANDS_QUEUE, siteSubscriptionName } from '../../shared/bus/entities';
import { PROVIDER_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC } from '../../shared/contracts/messages';
import { HvrError } from '../../shared/errors';
import { ports } from '../../shared/ports';
import { LocalHost, startLocalHost } from '../../tools/platform';
import { uniqueName } from '../support/azurite';

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

const lines: string[] = [];
let host: LocalHost;
let client: ServiceBusClient;

beforeAll(async () => {
    host = await startLocalHost({
        appRoot: __dirname,
        modules: [require.resolve('../../functions/apiSites')],
        port: 0,
        storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
        settings: { PROVIDER_BUS: '', STATE_TABLE_PREFIX: uniqueName('t').replace(/[^A-Za-z0-9]/g, '') },
        blobScanIntervalMs: 0,
        timers: false,
        serviceBus: { siteScanIntervalMs: 200 },
        log: (line) => lines.push(line),
    });
    client = new ServiceBusClient(host.settings.PROVIDER_BUS!, busClientOptions(5_000));
});

let clientClosed = false;
async function closeClient(): Promise<void> {
    if (!clientClosed) await client.close();
    clientClosed = true;
}

afterAll(async () => {
    await closeClient();
    await host.stop();
});

/** Everything waiting on a site's subscription, read as a provider would (the real SDK), then completed. */
async function receiveAll(siteId: string): Promise<ServiceBusReceivedMessage[]> {
    const receiver = client.createReceiver(PROVIDER_EVENTS_TOPIC, siteSubscriptionName(siteId));
    const received: ServiceBusReceivedMessage[] = [];
    for (;;) {
        const batch = await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 });
        if (batch.length === 0) break;
        for (const m of batch) await receiver.completeMessage(m);
        received.push(...batch);
    }
    await receiver.close();
    return received;
}

// The SDK parses a JSON body (contentType application/json) unless told not to.
const bodyOf = (m: ServiceBusReceivedMessage): unknown =>
    Buffer.isBuffer(m.body) ? (JSON.parse(m.body.toString('utf8')) as unknown) : m.body;

describe('the local host serves the provider channel over its own Service Bus broker', () => {
    it('creates what infra creates, sets PROVIDER_BUS to it and prints what a provider needs', () => {
        const broker = host.providerBus!.broker;
        expect(host.settings.PROVIDER_BUS).toBe(host.providerBus!.connectionString);
        expect(host.settings.PROVIDER_BUS).toMatch(/UseDevelopmentEmulator=true/);
        for (const entity of [PROVIDER_COMMANDS_QUEUE, REJECTED_COMMANDS_QUEUE, PROVIDER_EVENTS_TOPIC]) {
            expect(broker.hasEntity(entity)).toBe(true);
        }
        expect(lines).toContain(`  PROVIDER_BUS=${host.settings.PROVIDER_BUS}`);
    });

    it("creates a site's subscription when the site registers through the API", async () => {
        const siteId = uniqueName('site');
        const response = await fetch(`${host.apiUrl}/sites`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-functions-key': host.functionKey },
            body: JSON.stringify({ siteId, name: 'Paris', kind: 'HyperVSite', timeZone: 'Europe/Paris' }),
        });
        expect(response.status).toBe(201);
        const path = `${PROVIDER_EVENTS_TOPIC}/Subscriptions/${siteSubscriptionName(siteId)}`;
        const until = Date.now() + 10_000;
        while (!host.providerBus!.broker.hasEntity(path)) {
            if (Date.now() > until) throw new Error(`No ${path}; host log:\n${lines.join('\n')}`);
            await new Promise((r) => setTimeout(r, 50));
        }
        expect(lines.some((l) => l.includes(`subscription ${PROVIDER_EVENTS_TOPIC}/site-${siteId} created`))).toBe(
            true,
        );
    });

    it("sends events to the site's subscription only, one VM's events in order, as the Service Bus adapter does", async () => {
        const siteId = uniqueName('site');
        const other = uniqueName('other');
        host.providerBus!.ensureSite(other);
        const publisher = ports().providerEvents();
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
        await publisher.publish({
            type: 'PolicyChanged',
            siteId,
            payload: {
                policyName: 'gold',
                vmIds: [],
                copyFrequencySeconds: 300,
                appConsistentSnapshotFrequencyHours: 0,
                bandwidth: { timeZone: 'UTC', workDays: ['Mon'], workHoursStart: '08:00', workHoursEnd: '18:00' },
            },
        });

        const received = await receiveAll(siteId);
        const vm1 = received.filter((m) => m.sessionId === 'vm-1');
        expect(vm1.map((m) => (bodyOf(m) as { requestId: string }).requestId)).toEqual(['r1', 'r2', 'r3']);
        const sequence = vm1.map((m) => Number(m.sequenceNumber));
        expect(sequence).toEqual([...sequence].sort((a, b) => a - b));
        expect(vm1[0]).toMatchObject({
            messageId: 'grant:1',
            contentType: 'application/json',
            subject: 'UploadGrant',
            applicationProperties: { siteId, type: 'UploadGrant', version: 1 },
        });
        expect(bodyOf(received.find((m) => m.sessionId === 'vm-2')!)).toEqual({
            type: 'StopReplication',
            version: 1,
            vmId: 'vm-2',
            reason: 'Protection disabled by operator.',
        });
        expect(received.find((m) => m.subject === 'PolicyChanged')?.sessionId).toBe(`site:${siteId}`);
        // Another site's provider sees none of it.
        expect(await receiveAll(other)).toEqual([]);
    });

    it('refuses an event its schema rejects and sends nothing', async () => {
        const siteId = uniqueName('site');
        const sending = ports()
            .providerEvents()
            .publish({ type: 'StopReplication', siteId, vmId: 'vm-1', payload: { vmId: 'vm-1' } });
        await expect(sending).rejects.toBeInstanceOf(HvrError);
        await expect(sending).rejects.toMatchObject({ code: 'MESSAGE_INVALID' });
        expect(await receiveAll(siteId)).toEqual([]);
    });
});

describe('the local host with PROVIDER_BUS naming a namespace', () => {
    it('starts no broker and publishes to that namespace', async () => {
        await closeClient();
        await host.stop();
        const withBus = await startLocalHost({
            appRoot: __dirname,
            modules: [],
            port: 0,
            storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
            settings: { PROVIDER_BUS: 'Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=a;' },
            blobScanIntervalMs: 0,
            timers: false,
            log: () => undefined,
        });
        try {
            expect(withBus.providerBus).toBeUndefined();
            expect(ports().providerEvents()).toBeInstanceOf(ServiceBusEventPublisher);
        } finally {
            await withBus.stop();
        }
        expect(() => ports().providerEvents()).toThrow(/PROVIDER_BUS/);
    });
});
