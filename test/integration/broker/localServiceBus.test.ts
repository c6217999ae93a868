import { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';
import { busClientOptions } from '../../../shared/bus/busClient';
import { LocalServiceBus } from '../../../packages/functions-local/src';
import { createProviderEntities, createSiteSubscription } from '../../../tools/platform/providerEntities';

let broker: LocalServiceBus;
let client: ServiceBusClient;

beforeEach(async () => {
    broker = await LocalServiceBus.start({ lockSweepMs: 50 });
    client = new ServiceBusClient(broker.connectionString, busClientOptions(5_000));
});

afterEach(async () => {
    await client.close();
    await broker.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function receiveOne(receiver: ServiceBusReceiver, waitMs = 3_000): Promise<ServiceBusReceivedMessage> {
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: waitMs });
    if (!message) throw new Error('nothing received');
    return message;
}

describe('the local Service Bus broker with the real SDK', () => {
    it('is reached with a development-emulator connection string on loopback', () => {
        expect(broker.connectionString).toMatch(
            /^Endpoint=sb:\/\/127\.0\.0\.1:\d+;SharedAccessKeyName=[^;]+;SharedAccessKey=[^;]+;UseDevelopmentEmulator=true$/,
        );
    });

    it('assigns sequence numbers itself, whatever the sender annotates', async () => {
        broker.createQueue('q');
        const sender = client.createSender('q');
        await sender.sendMessages({ body: 'a' });
        // A message claiming a huge sequence number, as a crafted one would.
        await sender.sendMessages({
            body: 'b',
            bodyType: 'value',
            messageAnnotations: { 'x-opt-sequence-number': 1e15, 'x-opt-enqueued-time': 0 },
        });
        await sender.sendMessages([{ body: 'c' }, { body: 'd' }]);
        const receiver = client.createReceiver('q');
        const got = await receiver.receiveMessages(4, { maxWaitTimeInMs: 2_000 });
        expect(got.map((m) => m.body as string)).toEqual(['a', 'b', 'c', 'd']);
        expect(got.map((m) => Number(m.sequenceNumber))).toEqual([1, 2, 3, 4]);
        for (const m of got) await receiver.completeMessage(m);
    });

    it('drops a duplicate message id on a queue with duplicate detection, not on one without', async () => {
        broker.createQueue('dedup', { duplicateDetection: true });
        broker.createQueue('plain');
        for (const queue of ['dedup', 'plain']) {
            const sender = client.createSender(queue);
            await sender.sendMessages({ body: 1, messageId: 'same' });
            await sender.sendMessages({ body: 2, messageId: 'same' });
        }
        expect(broker.messages('dedup')).toHaveLength(1);
        expect(broker.messages('plain')).toHaveLength(2);
    });

    it('redelivers a message whose lock expired, with deliveryCount + 1, and refuses the late settlement', async () => {
        broker.createQueue('short', { lockDurationMs: 300 });
        await client.createSender('short').sendMessages({ body: 'x' });
        const receiver = client.createReceiver('short', { maxAutoLockRenewalDurationInMs: 0 });
        const first = await receiveOne(receiver);
        expect(first.deliveryCount).toBe(0);
        await sleep(600);
        await expect(receiver.completeMessage(first)).rejects.toMatchObject({ code: 'MessageLockLost' });
        const again = await receiveOne(receiver);
        expect(again.deliveryCount).toBe(1);
        expect(again.sequenceNumber?.toString()).toBe(first.sequenceNumber?.toString());
        await receiver.completeMessage(again);
        expect(broker.messages('short')).toEqual([]);
    });

    it('keeps delivering to one long-lived receiver past 2,048 messages (an AMQP session holds that many unfreed)', async () => {
        broker.createQueue('long');
        const sender = client.createSender('long');
        const receiver = client.createReceiver('long');
        let got = 0;
        const subscription = receiver.subscribe(
            {
                processMessage: async (m) => {
                    await receiver.completeMessage(m);
                    got++;
                },
                processError: async () => undefined,
            },
            { maxConcurrentCalls: 1, autoCompleteMessages: false },
        );
        try {
            for (let i = 0; i < 2_200; i += 200) {
                await sender.sendMessages(Array.from({ length: 200 }, (_, j) => ({ body: i + j })));
            }
            // Before, the 2,049th message stayed in the queue for good: the broker's session stopped sending.
            const until = Date.now() + 30_000;
            while (got < 2_200 && Date.now() < until) await sleep(100);
        } finally {
            await subscription.close();
        }
        expect(got).toBe(2_200);
        expect(broker.messages('long')).toEqual([]);
    }, 60_000);

    it('keeps a lock that is renewed', async () => {
        broker.createQueue('renewed', { lockDurationMs: 400 });
        await client.createSender('renewed').sendMessages({ body: 'x' });
        const receiver = client.createReceiver('renewed', { maxAutoLockRenewalDurationInMs: 0 });
        const message = await receiveOne(receiver);
        for (let i = 0; i < 4; i++) {
            await sleep(200);
            const until = await receiver.renewMessageLock(message);
            expect(until.getTime()).toBeGreaterThan(Date.now());
        }
        await receiver.completeMessage(message);
        expect(broker.messages('renewed')).toEqual([]);
        expect(broker.lockedCount('renewed')).toBe(0);
    });

    it('dead-letters with reason and description, readable from the dead-letter sub-queue', async () => {
        broker.createQueue('dl');
        await client.createSender('dl').sendMessages({ body: 'bad', messageId: 'm1' });
        const receiver = client.createReceiver('dl');
        await receiver.deadLetterMessage(await receiveOne(receiver), {
            deadLetterReason: 'MESSAGE_SIGNATURE',
            deadLetterErrorDescription: 'Signature does not match.',
        });
        const dlq = client.createReceiver('dl', { subQueueType: 'deadLetter' });
        const dead = await receiveOne(dlq);
        expect(dead).toMatchObject({
            messageId: 'm1',
            deadLetterReason: 'MESSAGE_SIGNATURE',
            deadLetterErrorDescription: 'Signature does not match.',
            deadLetterSource: 'dl',
        });
        await dlq.completeMessage(dead);
    });

    it('dead-letters with MaxDeliveryCountExceeded after maxDeliveryCount abandons', async () => {
        broker.createQueue('poison', { maxDeliveryCount: 3 });
        await client.createSender('poison').sendMessages({ body: 'p' });
        const receiver = client.createReceiver('poison');
        for (let i = 0; i < 3; i++) await receiver.abandonMessage(await receiveOne(receiver));
        expect(broker.messages('poison')).toEqual([]);
        const [dead] = broker.messages('poison/$DeadLetterQueue');
        expect(dead?.message.application_properties?.DeadLetterReason).toBe('MaxDeliveryCountExceeded');
    });

    it('locks a session to one receiver, in order, and frees it when the session lock expires', async () => {
        broker.createQueue('sessions', { sessions: true, lockDurationMs: 2_000 });
        const sender = client.createSender('sessions');
        for (const n of [1, 2, 3]) await sender.sendMessages({ body: n, sessionId: 'vm-1' });
        const first = await client.acceptNextSession('sessions', { maxAutoLockRenewalDurationInMs: 0 });
        expect(first.sessionId).toBe('vm-1');
        await expect(client.acceptSession('sessions', 'vm-1')).rejects.toMatchObject({
            code: 'SessionCannotBeLocked',
        });
        const got = await first.receiveMessages(3, { maxWaitTimeInMs: 1_000 });
        expect(got.map((m) => m.body as number)).toEqual([1, 2, 3]);
        await first.completeMessage(got[0]!);
        // Not renewed: the session lock expires and the unsettled messages are delivered again.
        await sleep(2_500);
        const second = await client.acceptSession('sessions', 'vm-1');
        const again = await second.receiveMessages(3, { maxWaitTimeInMs: 1_000 });
        expect(again.map((m) => [m.body as number, m.deliveryCount])).toEqual([
            [2, 1],
            [3, 1],
        ]);
        for (const m of again) await second.completeMessage(m);
        await second.close();
    });

    it('keeps a session renewed by the SDK', async () => {
        broker.createQueue('kept', { sessions: true, lockDurationMs: 400 });
        await client.createSender('kept').sendMessages({ body: 1, sessionId: 's' });
        const receiver = await client.acceptNextSession('kept', { maxAutoLockRenewalDurationInMs: 10_000 });
        const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
        await sleep(1_000);
        await receiver.completeMessage(message!);
        expect(broker.messages('kept')).toEqual([]);
        await receiver.close();
    });
});

describe('the provider entities, as infra creates them', () => {
    it('routes a topic message to the subscription of the site it names only', async () => {
        createProviderEntities(broker);
        createSiteSubscription(broker, 'paris');
        createSiteSubscription(broker, 'lyon');
        expect(createSiteSubscription(broker, 'paris')).toBe(false);
        await client
            .createSender('provider-events')
            .sendMessages({ body: 'e', messageId: 'e1', applicationProperties: { siteId: 'paris' } });
        const paris = client.createReceiver('provider-events', 'site-paris');
        const event = await receiveOne(paris);
        expect(event.applicationProperties?.siteId).toBe('paris');
        await paris.completeMessage(event);
        expect(broker.messages('provider-events/Subscriptions/site-lyon')).toEqual([]);
    });

    it('has provider-commands with sessions and duplicate detection, and provider-commands-rejected', async () => {
        createProviderEntities(broker);
        const sender = client.createSender('provider-commands');
        await sender.sendMessages({ body: 1, messageId: 'c1', sessionId: 'vm-1' });
        await sender.sendMessages({ body: 1, messageId: 'c1', sessionId: 'vm-1' });
        expect(broker.messages('provider-commands')).toHaveLength(1);
        await expect(
            client.createReceiver('provider-commands').receiveMessages(1, { maxWaitTimeInMs: 500 }),
        ).rejects.toThrow(/requires sessions/);
        expect(broker.hasEntity('provider-commands-rejected')).toBe(true);
    });

    it('answers a receiver of an entity that does not exist with not-found', async () => {
        await expect(
            client.createReceiver('nowhere').receiveMessages(1, { maxWaitTimeInMs: 500 }),
        ).rejects.toMatchObject({ code: 'MessagingEntityNotFound' });
    });
});

describe('the message size limit', () => {
    it('is the Standard tier 256 KiB by default: the SDK refuses a larger message before sending it', async () => {
        broker.createQueue('sized');
        const sender = client.createSender('sized');
        await expect(sender.sendMessages({ body: Buffer.alloc(300 * 1024) })).rejects.toMatchObject({
            code: 'MessageSizeExceeded',
        });
        await sender.sendMessages({ body: Buffer.alloc(200 * 1024) });
        expect(broker.messages('sized')).toHaveLength(1);
    });
});
