import { ServiceBusClient } from '@azure/service-bus';
import { busClientOptions } from '../../../shared/bus/busClient';
import { ServiceBusEventPublisher } from '../../../shared/bus/eventPublisher';
import { ProviderSitesTable } from '../../../shared/contracts/providerSites';
import { signCommand } from '../../../shared/contracts/signature';
import { ports } from '../../../shared/ports';
import { connectionFromString } from '../../../shared/storage/connections';
import { LocalHost, startLocalHost } from '../../../tools/platform';
import { LocalServiceBus } from '../../../packages/functions-local/src';
import { uniqueName } from '../../support/azurite';
import { commands } from '../../unit/contracts/fakeChannel';

const COMMANDS = 'provider-commands';
const DEAD_LETTERS = `${COMMANDS}/$DeadLetterQueue`;
const EVENTS = 'provider-events';

let peer: LocalServiceBus;
let client: ServiceBusClient;
let host: LocalHost | undefined;
const lines: string[] = [];

beforeEach(async () => {
    peer = await LocalServiceBus.start();
    peer.createQueue(COMMANDS, { sessions: true, maxDeliveryCount: 5 });
    peer.createTopic(EVENTS, { duplicateDetection: true });
    client = new ServiceBusClient(peer.connectionString, busClientOptions(5_000));
    lines.length = 0;
});

afterEach(async () => {
    await host?.stop();
    host = undefined;
    await client.close();
    await peer.stop();
});

async function startHost(): Promise<LocalHost> {
    host = await startLocalHost({
        appRoot: __dirname,
        modules: [require.resolve('../../../functions/providerCommands')],
        port: 0,
        storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
        settings: { PROVIDER_BUS: peer.connectionString },
        blobScanIntervalMs: 0,
        timers: false,
        serviceBus: { receiveWaitMs: 200, pollIntervalMs: 100 },
        drainTimeoutMs: 10_000,
        log: (line) => lines.push(line),
    });
    return host;
}

async function eventually<T>(probe: () => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
    const start = Date.now();
    for (;;) {
        const value = probe();
        if (value !== undefined) return value;
        if (Date.now() - start > timeoutMs)
            throw new Error(`Timed out waiting for ${what}; host log:\n${lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

describe('the local host with PROVIDER_BUS set to a namespace', () => {
    it('receives provider-commands through the shared handler: a command from an unknown site is dead-lettered with its reason', async () => {
        const h = await startHost();
        expect(h.functions.find((f) => f.name === 'providerCommands')?.detail).toMatch(
            /from Service Bus via PROVIDER_BUS/,
        );
        const stranger = { siteId: uniqueName('site'), keyId: 'k1', key: Buffer.alloc(32, 7) };
        const command = commands.cycleCompleted('vm-unknown-1');
        const signed = signCommand(command, stranger, {
            messageId: 'cmd-unknown-1',
            sessionId: 'vm-unknown-1',
            signedAt: new Date(),
        });
        await client.createSender(COMMANDS).sendMessages({
            body: signed.body,
            contentType: signed.contentType,
            messageId: 'cmd-unknown-1',
            sessionId: 'vm-unknown-1',
            applicationProperties: signed.applicationProperties,
        });

        const [dead] = await eventually(() => {
            const m = peer.messages(DEAD_LETTERS);
            return m.length > 0 ? m : undefined;
        }, 'the command in the dead-letter queue');
        expect(dead!.message.message_id).toBe('cmd-unknown-1');
        // The contract's reason for an unknown site (docs/provider-contract.md, "Dead letters").
        expect(dead!.message.application_properties?.DeadLetterReason).toBe('MESSAGE_SITE_UNKNOWN');
        expect(dead!.message.application_properties?.DeadLetterErrorDescription).toMatch(
            `No key k1 for site ${stranger.siteId}:`,
        );
        expect(peer.messages(COMMANDS)).toEqual([]);
        expect(peer.lockedCount(COMMANDS)).toBe(0);

        expect(await h.stop()).toEqual({ abandonedInvocations: 0 });
        host = undefined;
    });

    it("carries out a registered site's command through the runtime's durable client and completes it", async () => {
        const sites = new ProviderSitesTable(connectionFromString(process.env.AZURITE_CONNECTION_STRING!));
        const siteId = uniqueName('site');
        const vmId = uniqueName('vm');
        const issued = await sites.registerSite({ siteId, name: 'Paris', timeZone: 'Europe/Paris' }, new Date());
        await sites.assignVm(vmId, siteId, new Date());
        await startHost();
        const signer = { siteId, keyId: issued.keyId, key: Buffer.from(issued.key, 'base64') };
        const signed = signCommand(commands.cycleCompleted(vmId), signer, {
            messageId: 'cmd-known-1',
            sessionId: vmId,
            signedAt: new Date(),
        });
        await client.createSender(COMMANDS).sendMessages({
            body: signed.body,
            contentType: signed.contentType,
            messageId: 'cmd-known-1',
            sessionId: vmId,
            applicationProperties: signed.applicationProperties,
        });

        // Remembered only after the lifecycle event went through the durable client (no monitor runs for this
        // VM, so the runtime answers 404 and the handler records the missing instance instead of failing).
        const deadline = Date.now() + 20_000;
        while (!(await sites.seen(siteId, 'cmd-known-1'))) {
            if (Date.now() > deadline)
                throw new Error(`The command was not carried out; host log:\n${lines.join('\n')}`);
            await new Promise((r) => setTimeout(r, 100));
        }
        await eventually(
            () => (peer.messages(COMMANDS).length === 0 && peer.lockedCount(COMMANDS) === 0 ? true : undefined),
            'the command completed',
        );
        expect(peer.messages(DEAD_LETTERS)).toEqual([]);
    });

    it('publishes provider events to the topic instead of local queues, and gives the port back on stop', async () => {
        const site = uniqueName('site');
        peer.createSubscription(EVENTS, site, (m) => m.application_properties?.siteId === site);
        const h = await startHost();
        expect(h.providerBus).toBeUndefined();
        const publisher = ports().providerEvents();
        expect(publisher).toBeInstanceOf(ServiceBusEventPublisher);
        await publisher.publish({
            type: 'StopReplication',
            siteId: site,
            vmId: 'vm-e1',
            payload: { vmId: 'vm-e1', reason: 'Protection disabled.' },
            messageId: 'stop:vm-e1:1',
        });
        const [event] = peer.messages(`${EVENTS}/Subscriptions/${site}`);
        expect(event?.message.message_id).toBe('stop:vm-e1:1');
        expect(event?.message.group_id).toBe('vm-e1');

        await h.stop();
        host = undefined;
        // The host's setting and publisher are gone with it: nothing publishes to a closed connection.
        expect(() => ports().providerEvents()).toThrow(expect.objectContaining({ code: 'CONFIG_MISSING' }));
    });

    it('stops cleanly while its receiver waits for sessions', async () => {
        const h = await startHost();
        // Let the receiver go round its accept loop a few times before stopping.
        await new Promise((r) => setTimeout(r, 500));
        expect(await h.stop()).toEqual({ abandonedInvocations: 0 });
        host = undefined;
        const accepted = peer.connectionsAccepted;
        await new Promise((r) => setTimeout(r, 300));
        expect(peer.connectionsAccepted).toBe(accepted);
    });
});
