import { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import { busClientOptions } from '../../../shared/bus/busClient';
import { ServiceBusCommandReceiver } from '../../../shared/bus/commandReceiver';
import { ServiceBusEventPublisher } from '../../../shared/bus/eventPublisher';
import { handleProviderCommand, ProviderCommandDelivery } from '../../../shared/contracts/commandHandler';
import { signCommand } from '../../../shared/contracts/signature';
import { LocalServiceBus } from '../../../packages/functions-local/src';
import { ProviderChannel } from '../../../packages/provider-kit/src';
import { siteSubscriptionName } from '../../../shared/bus/entities';
import type { ProviderEvent, StopReplicationEvent } from '../../../shared/contracts/messages';
import { commands, FakeChannel, fakeChannel, SITE_A } from '../../unit/contracts/fakeChannel';

const QUEUE = 'provider-commands';
const TOPIC = 'provider-events';

let peer: LocalServiceBus;
let client: ServiceBusClient;

beforeEach(async () => {
    peer = await LocalServiceBus.start();
    peer.createQueue(QUEUE, { sessions: true, maxDeliveryCount: 5 });
    peer.createTopic(TOPIC, { duplicateDetection: true });
    for (const site of ['site-a', 'site-b']) {
        peer.createSubscription(TOPIC, site, (m) => m.application_properties?.siteId === site);
    }
    client = new ServiceBusClient(peer.connectionString, busClientOptions(5_000));
});

afterEach(async () => {
    await client.close();
    await peer.stop();
});

async function eventually<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
    const start = Date.now();
    for (;;) {
        const value = probe();
        if (value !== undefined) return value;
        if (Date.now() - start > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
    }
}

describe('ServiceBusEventPublisher with the real client', () => {
    const grant = {
        type: 'StopReplication' as const,
        siteId: 'site-a',
        vmId: 'vm-a1',
        payload: { vmId: 'vm-a1', reason: 'Protection disabled.' },
        messageId: 'stop:vm-a1:1',
    };

    it('sends to the topic with siteId/type/version properties; only that site subscription gets it', async () => {
        const publisher = new ServiceBusEventPublisher(client);
        await publisher.publish(grant);
        const [received] = await eventually(() => {
            const m = peer.messages(`${TOPIC}/Subscriptions/site-a`);
            return m.length ? m : undefined;
        }, 'the event on site-a');
        expect(received!.message.application_properties).toEqual({
            siteId: 'site-a',
            type: 'StopReplication',
            version: 1,
        });
        expect(received!.message.message_id).toBe('stop:vm-a1:1');
        expect(received!.message.group_id).toBe('vm-a1');
        expect(peer.messages(`${TOPIC}/Subscriptions/site-b`)).toEqual([]);
        const receiver = client.createReceiver(TOPIC, 'site-a');
        const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
        expect(message!.body).toEqual({
            type: 'StopReplication',
            version: 1,
            vmId: 'vm-a1',
            reason: 'Protection disabled.',
        });
        await receiver.completeMessage(message!);
        await publisher.close();
    });

    it('a re-send with the same message id is dropped by duplicate detection', async () => {
        const publisher = new ServiceBusEventPublisher(client);
        await publisher.publish(grant);
        await publisher.publish(grant);
        await publisher.publish({ ...grant, messageId: 'stop:vm-a1:2' });
        await eventually(
            () => (peer.messages(`${TOPIC}/Subscriptions/site-a`).length === 2 ? true : undefined),
            'two events',
        );
        await new Promise((r) => setTimeout(r, 200));
        expect(peer.messages(`${TOPIC}/Subscriptions/site-a`).map((m) => m.message.message_id)).toEqual([
            'stop:vm-a1:1',
            'stop:vm-a1:2',
        ]);
    });

    it('refuses to send an event that does not match its schema, and sends nothing', async () => {
        const publisher = new ServiceBusEventPublisher(client);
        await expect(publisher.publish({ ...grant, payload: { vmId: 'vm-a1' } })).rejects.toMatchObject({
            code: 'MESSAGE_INVALID',
        });
        expect(peer.messages(`${TOPIC}/Subscriptions/site-a`)).toEqual([]);
    });

    it('keeps publishing after the connection drops (the client reconnects)', async () => {
        const publisher = new ServiceBusEventPublisher(client, { timeoutInMs: 20_000 });
        await publisher.publish(grant);
        const before = peer.connectionsAccepted;
        peer.dropConnections();
        await publisher.publish({ ...grant, messageId: 'stop:vm-a1:after-drop' });
        expect(peer.connectionsAccepted).toBeGreaterThan(before);
        expect(peer.messages(`${TOPIC}/Subscriptions/site-a`).map((m) => m.message.message_id)).toEqual([
            'stop:vm-a1:1',
            'stop:vm-a1:after-drop',
        ]);
    });

    it('bounds a publish: an aborted call rejects instead of hanging', async () => {
        const publisher = new ServiceBusEventPublisher(client);
        const aborted = AbortSignal.abort();
        await expect(publisher.publish(grant, { abortSignal: aborted })).rejects.toThrow();
    });
});

describe('ServiceBusCommandReceiver with the real client', () => {
    let channel: FakeChannel;
    let sender: ServiceBusSender;
    let sent = 0;

    beforeEach(() => {
        channel = fakeChannel();
        // The peer stamps real time; the handler's freshness check must see the same clock.
        channel.ports.clock = { now: () => new Date() };
        sender = client.createSender(QUEUE);
    });

    async function send(
        command: Record<string, unknown>,
        overrides: Partial<Record<string, unknown>> = {},
    ): Promise<string> {
        const messageId = `cmd-${++sent}`;
        const sessionId = typeof command.vmId === 'string' ? command.vmId : 'site:site-a';
        const signed = signCommand(command, SITE_A, { messageId, sessionId, signedAt: new Date() });
        await sender.sendMessages({
            body: signed.body,
            contentType: signed.contentType,
            messageId,
            sessionId,
            applicationProperties: { ...signed.applicationProperties, ...overrides },
        });
        return messageId;
    }

    function receiverWith(
        handle: (d: ProviderCommandDelivery) => ReturnType<typeof handleProviderCommand> = (d) =>
            handleProviderCommand(d, channel.ports),
    ): ServiceBusCommandReceiver {
        return new ServiceBusCommandReceiver(client, handle, {
            maxWaitTimeInMs: 300,
            backoffMs: 50,
        });
    }

    it('receives a signed command from its session, carries it out and completes it', async () => {
        channel.runningInstances.add('monitor:vm-a1');
        await send(commands.cycleCompleted());
        const pass = await receiverWith().processNextSession();
        expect(pass).toEqual({ sessionId: 'vm-a1', completed: 1, deadLettered: 0, abandoned: 0 });
        expect(channel.writes[0]).toMatchObject({
            kind: 'raise',
            instanceId: 'monitor:vm-a1',
            eventName: 'CycleUploaded',
        });
        expect(peer.messages(QUEUE)).toEqual([]);
        expect(peer.lockedCount(QUEUE)).toBe(0);
    });

    it('dead-letters a tampered message with the reason code and a one-line description, changing nothing', async () => {
        await send(commands.cycleCompleted(), { signature: 'AAAA' });
        const pass = await receiverWith().processNextSession();
        expect(pass.deadLettered).toBe(1);
        expect(channel.writes).toEqual([]);
        const dlq = client.createReceiver(QUEUE, { subQueueType: 'deadLetter' });
        const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
        expect(dead!.deadLetterReason).toBe('MESSAGE_SIGNATURE');
        expect(dead!.deadLetterErrorDescription).toMatch(/^Signature does not match site site-a key k1\.$/);
        await dlq.completeMessage(dead!);
    });

    it('abandons on a transient failure; the message comes back with deliveryCount + 1 and is then completed', async () => {
        const counts: (number | undefined)[] = [];
        let failures = 1;
        const receiver = receiverWith(async (d) => {
            counts.push(d.deliveryCount);
            if (failures-- > 0) return { action: 'abandon', reason: 'TRANSIENT', description: 'table timed out' };
            return handleProviderCommand(d, channel.ports);
        });
        await send(commands.register());
        expect(await receiver.processNextSession()).toMatchObject({ sessionId: 'site:site-a', abandoned: 1 });
        expect(await receiver.processNextSession()).toMatchObject({ sessionId: 'site:site-a', completed: 1 });
        expect(counts).toEqual([0, 1]);
        expect(channel.writes.map((w) => w.kind)).toEqual(['registration', 'remember']);
    });

    it('keeps a VM order: after an abandon, later messages of that session wait behind it', async () => {
        const seen: string[] = [];
        let failFirst = true;
        const receiver = receiverWith(async (d) => {
            seen.push(d.messageId!);
            if (failFirst) {
                failFirst = false;
                return { action: 'abandon', reason: 'TRANSIENT', description: 'try later' };
            }
            return handleProviderCommand(d, channel.ports);
        });
        const first = await send(commands.initialProgress());
        const second = await send(commands.cycleCompleted());
        await receiver.processNextSession();
        await receiver.processNextSession();
        expect(seen).toEqual([first, first, second]);
    });

    it('dead-letters with MaxDeliveryCountExceeded when a message keeps failing', async () => {
        const receiver = receiverWith(async () => ({ action: 'abandon', reason: 'TRANSIENT', description: 'down' }));
        await send(commands.register());
        for (let i = 0; i < 5; i++) await receiver.processNextSession();
        const [dead] = peer.messages(`${QUEUE}/$DeadLetterQueue`);
        expect(dead!.message.application_properties?.DeadLetterReason).toBe('MaxDeliveryCountExceeded');
    });

    it('runs as a background loop and recovers from a dropped connection', async () => {
        channel.runningInstances.add('monitor:vm-a1');
        const receiver = receiverWith();
        receiver.start();
        try {
            await send(commands.cycleCompleted());
            await eventually(() => (channel.writes.length >= 2 ? true : undefined), 'the first command');
            const before = peer.connectionsAccepted;
            peer.dropConnections();
            await send(commands.cycleCompleted('vm-a2'));
            await eventually(
                () =>
                    channel.writes.some((w) => w.kind === 'raise' && w.instanceId === 'monitor:vm-a2')
                        ? true
                        : undefined,
                'the command sent after the drop',
                30_000,
            );
            expect(peer.connectionsAccepted).toBeGreaterThan(before);
            expect(peer.messages(QUEUE)).toEqual([]);
        } finally {
            await receiver.stop();
        }
    });

    it('goes on when the connection drops while a completion is in flight: the command comes back, nothing hangs', async () => {
        // The SDK never settles a completion whose link drops under it, and its own timeout does not bound that
        // call: the pass must end when the receiver closes, not after operationTimeoutMs (left at its default).
        channel.runningInstances.add('monitor:vm-a1');
        channel.runningInstances.add('monitor:vm-a2');
        const warnings: string[] = [];
        const receiver = new ServiceBusCommandReceiver(client, (d) => handleProviderCommand(d, channel.ports), {
            maxWaitTimeInMs: 300,
            backoffMs: 50,
            log: { info: () => undefined, warn: (line, fields) => warnings.push(`${line} ${JSON.stringify(fields)}`) },
        });
        peer.dropConnectionsOnNextSettlement();
        const first = await send(commands.cycleCompleted());
        receiver.start();
        try {
            await send(commands.cycleCompleted('vm-a2'));
            await eventually(
                () =>
                    channel.writes.some((w) => w.kind === 'raise' && w.instanceId === 'monitor:vm-a2') &&
                    peer.messages(QUEUE).length === 0 &&
                    peer.lockedCount(QUEUE) === 0
                        ? true
                        : undefined,
                'both commands settled after the drop',
                20_000,
            );
            expect(warnings.some((w) => w.includes('closed during complete'))).toBe(true);
            // The first command was carried out once; its redelivery was recognised and completed.
            const raisedForFirst = channel.writes.filter((w) => w.kind === 'raise' && w.instanceId === 'monitor:vm-a1');
            expect(raisedForFirst).toHaveLength(1);
            expect(peer.messages(`${QUEUE}/$DeadLetterQueue`).map((m) => m.message.message_id)).not.toContain(first);
        } finally {
            await receiver.stop();
        }
    });

    it('keeps the session lock while handlers run longer than the lock and the renewal window', async () => {
        // One slow message (longer than the lock) and a session that stays busy for longer than lock and
        // renewal window together: nothing may be lost or delivered twice, and no pass may fail.
        const queue = 'short-lock-commands';
        peer.createQueue(queue, { sessions: true, lockDurationMs: 1_000, maxDeliveryCount: 5 });
        const failures: string[] = [];
        const seen: string[] = [];
        const receiver = new ServiceBusCommandReceiver(
            client,
            async (d) => {
                seen.push(`${d.messageId}#${d.deliveryCount}`);
                await new Promise((r) => setTimeout(r, d.messageId === 'm1' ? 2_500 : 700));
                return { action: 'complete', disposition: 'processed', type: 'Heartbeat', notes: [] };
            },
            {
                queue,
                maxWaitTimeInMs: 300,
                backoffMs: 50,
                batchSize: 1,
                maxAutoLockRenewalDurationInMs: 3_000,
                log: {
                    info: () => undefined,
                    warn: (line, fields) => failures.push(`${line} ${JSON.stringify(fields)}`),
                },
            },
        );
        const queueSender = client.createSender(queue);
        const ids = ['m1', 'm2', 'm3', 'm4', 'm5'];
        for (const messageId of ids) await queueSender.sendMessages({ body: messageId, messageId, sessionId: 'vm-6' });
        receiver.start();
        try {
            await eventually(
                () =>
                    seen.length >= ids.length && peer.messages(queue).length === 0 && peer.lockedCount(queue) === 0
                        ? true
                        : undefined,
                'the session drained',
                60_000,
            );
        } finally {
            await receiver.stop();
        }
        expect(failures).toEqual([]);
        expect(seen).toEqual(ids.map((id) => `${id}#0`));
        expect(peer.messages(`${queue}/$DeadLetterQueue`)).toEqual([]);
    });

    it('answers "no session" quickly when the queue is empty', async () => {
        expect(await receiverWith().processNextSession()).toEqual({ completed: 0, deadLettered: 0, abandoned: 0 });
    });
});

describe("the provider kit's channel with the real client", () => {
    it('keeps receiving events when the connection drops while an event is being completed', async () => {
        // Events are handled one at a time, so a completion that never answered would hold back every later one.
        // Here the non-session receiver's SDK answers the cut completion itself (it did not hang on the old
        // channel either): this checks that the channel reconnects and goes on, not the settlement bound, which
        // test/unit/bus/boundedCall.test.ts covers.
        peer.createSubscription(
            TOPIC,
            siteSubscriptionName('site-a'),
            (m) => m.application_properties?.siteId === 'site-a',
        );
        const lines: string[] = [];
        const channel = new ProviderChannel(
            { siteId: 'site-a', keyId: 'k1', key: Buffer.from('key').toString('base64') },
            peer.connectionString,
            { log: (line) => lines.push(line) },
        );
        const publisher = new ServiceBusEventPublisher(client);
        const stop = (vmId: string) => ({
            type: 'StopReplication' as const,
            siteId: 'site-a',
            vmId,
            payload: { vmId, reason: 'Protection disabled.' },
            messageId: `stop:${vmId}`,
        });
        const isStop =
            (vmId: string) =>
            (e: ProviderEvent): e is StopReplicationEvent =>
                e.type === 'StopReplication' && e.vmId === vmId;
        peer.dropConnectionsOnNextSettlement();
        const connectionsBefore = peer.connectionsAccepted;
        channel.start();
        try {
            await publisher.publish(stop('vm-a1'));
            await channel.waitForEvent(isStop('vm-a1'), 15_000, 'the first event');
            await publisher.publish(stop('vm-a2'));
            await channel.waitForEvent(isStop('vm-a2'), 20_000, 'the event after the drop');
            // The connection was cut under the completion, and the channel reconnected.
            expect(peer.connectionsAccepted).toBeGreaterThan(connectionsBefore);
            await eventually(
                () =>
                    peer.messages(`${TOPIC}/Subscriptions/${siteSubscriptionName('site-a')}`).length === 0 &&
                    peer.lockedCount(`${TOPIC}/Subscriptions/${siteSubscriptionName('site-a')}`) === 0
                        ? true
                        : undefined,
                'every event completed',
            );
        } finally {
            await channel.stop();
            await publisher.close();
        }
    });
});
