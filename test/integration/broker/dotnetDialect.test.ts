import { ServiceBusClient } from '@azure/service-bus';
import { create_container } from 'rhea';
import type { Connection, Message, Receiver, Sender } from 'rhea';
import { busClientOptions } from '../../../shared/bus/busClient';
import { LocalServiceBus } from '../../../packages/functions-local/src';

/**
 * What the .NET client (Azure.Messaging.ServiceBus 7.21 over Microsoft.Azure.Amqp) needs from the broker beyond what
 * the JavaScript SDK tolerates, checked on the wire with a plain AMQP client: the .NET client casts the values it
 * reads (an int status code, a symbol error condition), sends entity addresses with a leading `/`, and reads a body
 * only from a real data or value section.
 */

// The raw bytes of every message rhea decodes in this process (the broker's and the test client's alike), so that
// the AMQP type of a value can be read, not just its JavaScript value.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const rheaMessage = require('rhea/lib/message.js') as { decode: (this: void, buffer: Buffer) => Message };
const decoded: Buffer[] = [];
const realDecode = rheaMessage.decode;

let broker: LocalServiceBus;
let connection: Connection;

beforeEach(async () => {
    decoded.length = 0;
    rheaMessage.decode = (buffer: Buffer) => {
        decoded.push(Buffer.from(buffer));
        return realDecode(buffer);
    };
    broker = await LocalServiceBus.start({ lockSweepMs: 50 });
    connection = create_container().connect({ host: '127.0.0.1', port: broker.port, reconnect: false });
    connection.on('error', () => undefined);
    connection.on('disconnected', () => undefined);
    await new Promise((resolve) => connection.once('connection_open', resolve));
});

afterEach(async () => {
    rheaMessage.decode = realDecode;
    connection.close();
    await broker.stop();
});

function sender(address: string): Promise<Sender> {
    const link = connection.open_sender({ target: { address } });
    return new Promise((resolve) => link.once('sendable', () => resolve(link)));
}

/** A request-response pair of links as the SDKs open them for `$cbs` and `$management`. */
async function request(address: string, message: Message): Promise<Message> {
    const replyTo = `reply-${Math.random().toString(16).slice(2)}`;
    const receiver: Receiver = connection.open_receiver({ source: { address }, target: { address: replyTo } });
    await new Promise((resolve) => receiver.once('receiver_open', resolve));
    const answer = new Promise<Message>((resolve) =>
        receiver.once('message', (context) => resolve(context.message as Message)),
    );
    (await sender(address)).send({ message_id: 'req-1', reply_to: replyTo, ...message });
    return answer;
}

/** The AMQP type code of the value that follows the map key `key` (str8) in the last decoded message holding it. */
function typeCodeAfter(key: string): number {
    const encodedKey = Buffer.concat([Buffer.from([0xa1, key.length]), Buffer.from(key, 'ascii')]);
    const raw = [...decoded].reverse().find((b) => b.includes(encodedKey));
    if (!raw) throw new Error(`no decoded message holds the key ${key}`);
    return raw[raw.indexOf(encodedKey) + encodedKey.length]!;
}

const AMQP_INT = [0x71, 0x54]; // int, smallint
const AMQP_SYMBOL = [0xa3, 0xb3]; // sym8, sym32

describe('the local broker speaks the dialect the .NET Service Bus client reads', () => {
    it('answers CBS put-token with status-code as an AMQP int (the .NET client casts it to Int32)', async () => {
        const answer = await request('$cbs', {
            application_properties: { operation: 'put-token', name: 'sb://127.0.0.1/q', type: 'jwt' },
            body: 'token',
        });
        expect(answer.application_properties?.['status-code']).toBe(202);
        expect(AMQP_INT).toContain(typeCodeAfter('status-code'));
    });

    it('answers a management operation it does not implement with an int status and a symbol condition', async () => {
        broker.createQueue('q');
        const answer = await request('q/$management', {
            application_properties: { operation: 'com.microsoft:schedule-message' },
            body: {},
        });
        expect(answer.application_properties).toMatchObject({
            statusCode: 501,
            errorCondition: 'amqp:not-implemented',
        });
        expect(AMQP_INT).toContain(typeCodeAfter('statusCode'));
        expect(AMQP_SYMBOL).toContain(typeCodeAfter('errorCondition'));
    });

    it('takes a link to "/q", as the .NET client names the entity (the endpoint path), as queue q', async () => {
        broker.createQueue('q');
        const link = await sender('/q');
        link.send({ message_id: 'm1', body: 'x' });
        await new Promise((resolve) => link.once('accepted', resolve));
        expect(broker.messages('q').map((m) => m.message.message_id)).toEqual(['m1']);
    });

    it('refuses a link with a null terminus, then the error (a refused session receiver gets the timeout)', async () => {
        broker.createQueue('s', { sessions: true });
        for (const [address, filter, condition] of [
            ['nowhere', undefined, 'amqp:not-found'],
            ['s', { 'com.microsoft:session-filter': null }, 'com.microsoft:timeout'],
        ] as const) {
            const link = connection.open_receiver({ source: { address, filter } });
            const error = await new Promise<{ condition?: string }>((resolve) =>
                link.once('receiver_close', (context) => resolve(context.receiver!.error as { condition?: string })),
            );
            expect(error.condition).toBe(condition);
            // rhea hands a null terminus over as a typed null: whatever its shape, it names no address.
            const source = (link as unknown as { remote: { attach: { source?: { address?: string } | null } } }).remote
                .attach.source;
            expect(source?.address).toBeUndefined();
        }
    });

    it('copies a topic message to each subscription with its data section intact', async () => {
        broker.createTopic('t');
        broker.createSubscription('t', 'a');
        broker.createSubscription('t', 'b');
        const link = await sender('t');
        // A data section, as both SDKs send a JSON or binary body.
        link.send({ message_id: 'e1', body: rheaMessage.decode(Buffer.from('005375a0027b7d', 'hex')).body });
        await new Promise((resolve) => link.once('accepted', resolve));
        for (const sub of ['t/Subscriptions/a', 't/Subscriptions/b']) {
            const [stored] = broker.messages(sub);
            const body = stored!.message.body as { typecode?: number; content?: Buffer };
            expect(body.typecode).toBe(0x75);
            expect(Buffer.from(body.content!).toString()).toBe('{}');
        }
    });
});

describe('peek (com.microsoft:peek-message)', () => {
    it('browses from a sequence number on, locked messages included, without locking; an empty peek is 204', async () => {
        broker.createQueue('p');
        const client = new ServiceBusClient(broker.connectionString, busClientOptions(5_000));
        try {
            const send = client.createSender('p');
            for (const n of [1, 2, 3]) await send.sendMessages({ body: n, messageId: `m${n}` });
            const receiver = client.createReceiver('p');
            const [locked] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
            expect(locked?.messageId).toBe('m1');
            const lockedBefore = broker.lockedCount('p');
            const peeked = await receiver.peekMessages(10, { fromSequenceNumber: Long(1) });
            expect(peeked.map((m) => [m.messageId, Number(m.sequenceNumber)])).toEqual([
                ['m1', 1],
                ['m2', 2],
                ['m3', 3],
            ]);
            expect(broker.lockedCount('p')).toBe(lockedBefore);
            expect(broker.messages('p').length + broker.lockedCount('p')).toBe(3);
            const later = await receiver.peekMessages(10, { fromSequenceNumber: Long(3) });
            expect(later.map((m) => m.messageId)).toEqual(['m3']);
            expect(await receiver.peekMessages(10, { fromSequenceNumber: Long(4) })).toEqual([]);
            expect(AMQP_INT).toContain(typeCodeAfter('statusCode'));
        } finally {
            await client.close();
        }
    });
});

// A Long without importing the long package's types into the test: the SDK takes any object it can convert.
function Long(n: number) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const long = require('long') as { fromNumber(n: number): never };
    return long.fromNumber(n);
}
