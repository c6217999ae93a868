import { LocalHost, LocalHostOptions, startLocalHost } from '../../../tools/host/localHost';
import { uniqueName } from '../../support/azurite';
import { maxActiveBySession } from './fixtures/busApp';
import { probe } from './fixtures/probe';

function options(queue: string, extra: Partial<LocalHostOptions> = {}): LocalHostOptions {
    return {
        appRoot: __dirname,
        modules: [require.resolve('./fixtures/busApp')],
        port: 0,
        storageConnectionString: process.env.AZURITE_CONNECTION_STRING!,
        settings: { HOST_TEST_QUEUE: queue, HOST_TEST_BUS: '' },
        blobScanIntervalMs: 0,
        timers: false,
        queuePolling: false,
        serviceBus: { retryDelaySeconds: 0, maxDeliveryCount: 3 },
        log: () => undefined,
        ...extra,
    };
}

const delivered = (session: string): number[] =>
    probe
        .of('fixtureProviderCommand')
        .filter((c) => c.metadata?.sessionId === session)
        .map((c) => (c.input as { n: number }).n);

describe('provider messages through the local session queue', () => {
    let host: LocalHost | undefined;
    afterEach(async () => {
        await host?.stop();
        host = undefined;
        probe.reset();
    });

    it('delivers each session in order, one message at a time, even when one fails once', async () => {
        const queueName = uniqueName('cmds');
        host = await startLocalHost(options(queueName));
        const queue = host.providerQueue(queueName);
        for (let n = 1; n <= 5; n++) {
            for (const session of ['vm-a', 'vm-b', 'vm-c']) {
                await queue.send({ n, failOnce: session === 'vm-b' && n === 2 }, { sessionId: session });
            }
        }
        await host.deliverQueuedMessages();

        expect(delivered('vm-a')).toEqual([1, 2, 3, 4, 5]);
        expect(delivered('vm-c')).toEqual([1, 2, 3, 4, 5]);
        // The failed delivery of 2 is retried before 3 is delivered.
        expect(delivered('vm-b')).toEqual([1, 2, 2, 3, 4, 5]);
        for (const session of ['vm-a', 'vm-b', 'vm-c']) expect(maxActiveBySession.get(session)).toBe(1);
        const retry = probe.of('fixtureProviderCommand').filter((c) => c.metadata?.sessionId === 'vm-b')[2]!;
        expect(retry.metadata).toMatchObject({ deliveryCount: 2, sequenceNumber: 2 });
        expect(await queue.lastCompleted('vm-b')).toBe(5);
        expect(await queue.peekDeadLetters()).toEqual([]);
    });

    it('dead-letters a message after maxDeliveryCount failures with the reason, then goes on with its session', async () => {
        const queueName = uniqueName('cmds');
        host = await startLocalHost(options(queueName));
        const queue = host.providerQueue(queueName);
        const sent = await queue.send({ n: 1, poison: true }, { sessionId: 'vm-d', messageId: 'cmd-1' });
        await queue.send({ n: 2 }, { sessionId: 'vm-d' });
        await host.deliverQueuedMessages();

        expect(delivered('vm-d')).toEqual([1, 1, 1, 2]);
        const [dead] = await queue.peekDeadLetters();
        expect(dead).toMatchObject({
            messageId: 'cmd-1',
            sessionId: 'vm-d',
            sequenceNumber: sent.sequenceNumber,
            deliveryCount: 3,
            body: { n: 1, poison: true },
            deadLetterReason: 'MaxDeliveryCountExceeded',
            deadLetterErrorDescription: 'Error: command 1 is poison',
        });
    });

    it('dead-letters a message that is not an envelope instead of failing on it forever', async () => {
        const queueName = uniqueName('cmds');
        host = await startLocalHost(options(queueName));
        const queue = host.providerQueue(queueName);
        await (await queue.queue()).sendMessage('not json at all');
        await host.deliverQueuedMessages();
        const [dead] = await queue.peekDeadLetters();
        expect(dead).toMatchObject({ deadLetterReason: 'MessageInvalid', body: 'not json at all' });
        expect(probe.of('fixtureProviderCommand')).toHaveLength(0);
    });

    it('delivers in the background when polling, and stops cleanly', async () => {
        const queueName = uniqueName('cmds');
        host = await startLocalHost(options(queueName, { queuePolling: true, serviceBus: { pollIntervalMs: 20 } }));
        const queue = host.providerQueue(queueName);
        for (let n = 1; n <= 3; n++) await queue.send({ n }, { sessionId: 'vm-e' });
        for (let i = 0; i < 250 && delivered('vm-e').length < 3; i++) await new Promise((r) => setTimeout(r, 20));
        expect(delivered('vm-e')).toEqual([1, 2, 3]);
    });

    it('refuses to start when the trigger connection names a real Service Bus', async () => {
        const queueName = uniqueName('cmds');
        await expect(
            startLocalHost(
                options(queueName, { settings: { HOST_TEST_QUEUE: queueName, HOST_TEST_BUS: 'Endpoint=sb://x/' } }),
            ),
        ).rejects.toThrow(/HOST_TEST_BUS, which is set/);
    });
});
