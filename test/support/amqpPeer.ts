import { randomUUID } from 'node:crypto';
import { AddressInfo, Server, Socket } from 'node:net';
// rhea is the AMQP 1.0 library @azure/service-bus itself is built on. Named imports: its module object is a
// container instance whose methods live on the prototype.
import { create_container, message as amqpMessage, types as amqpTypes } from 'rhea';
import type { Connection, Delivery, EventContext, Message, Sender } from 'rhea';

/**
 * A small AMQP 1.0 broker that the real `@azure/service-bus` client can talk to (connection string with
 * `UseDevelopmentEmulator=true`, plain TCP). It does what our adapter needs and no more: CBS put-token, senders
 * to queues and topics (single messages and the SDK's batch format), topic subscriptions with a filter,
 * peek-lock receivers (the peer settles each disposition itself, as the SDK's second-mode settlement expects),
 * complete / abandon (redelivery with delivery count + 1, dead-letter past maxDeliveryCount) / dead-letter (to
 * `<entity>/$DeadLetterQueue` with reason and description), renew-lock and renew-session-lock on `$management`,
 * session receivers (`com.microsoft:session-filter`), duplicate detection by message id, and dropping every
 * connection on demand.
 */

const SESSION_FILTER = 'com.microsoft:session-filter';
const DEAD_LETTER_CONDITION = 'com.microsoft:dead-letter';
const BATCH_FORMAT = 0x80013700;
const DEAD_LETTER_SUFFIX = '/$deadletterqueue';
const TICKS_AT_UNIX_EPOCH = 621355968000000000n;

type RheaMessage = Message & { delivery_count?: number };

/** Link state rhea has at run time but leaves out of its typings. */
interface LinkFrames {
    remote: {
        attach?: { source?: { address?: string; filter?: Record<string, unknown> }; target?: { address?: string } };
    };
    local: { attach: { properties?: Record<string, unknown> } };
}
const frames = (link: unknown) => link as LinkFrames;

// rhea builds outcome states but does not declare these constructors in its typings.
const outcomeBuilders = amqpMessage as unknown as Record<
    'accepted' | 'released' | 'rejected',
    () => { described(): unknown }
>;
const OUTCOMES = {
    accepted: () => outcomeBuilders.accepted().described(),
    released: () => outcomeBuilders.released().described(),
    rejected: () => outcomeBuilders.rejected().described(),
};

export interface StoredMessage {
    message: RheaMessage;
    sequenceNumber: number;
    enqueuedAt: Date;
    /** Deliveries so far that did not end in complete. */
    deliveryCount: number;
    sessionId?: string;
}

interface LockedMessage {
    stored: StoredMessage;
    entity: Entity;
    sender: Sender;
    lockToken: string;
}

interface ReceiverLink {
    sender: Sender;
    entity: Entity;
    /** Set for a session receiver: it only gets that session's messages. */
    sessionId?: string;
}

export interface QueueOptions {
    sessions?: boolean;
    maxDeliveryCount?: number;
    lockDurationMs?: number;
    duplicateDetection?: boolean;
}

export type SubscriptionFilter = (message: RheaMessage) => boolean;

class Entity {
    readonly available: StoredMessage[] = [];
    readonly lockedSessions = new Map<string, Sender>();
    deadLetter?: Entity;
    constructor(
        readonly path: string,
        readonly options: QueueOptions,
    ) {}
}

interface Topic {
    path: string;
    subscriptions: { entity: Entity; filter: SubscriptionFilter }[];
    duplicateDetection: boolean;
}

function ticks(date: Date): Buffer {
    const value = BigInt(date.getTime()) * 10000n + TICKS_AT_UNIX_EPOCH;
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64BE(value);
    return buffer;
}

function unwrapFilterValue(value: unknown): unknown {
    if (value && typeof value === 'object' && 'value' in value) return value.value;
    return value;
}

function addressOf(terminus: unknown): string {
    const address = (terminus as { address?: string } | undefined)?.address ?? '';
    return address.replace(/^amqps?:\/\/[^/]+\//i, '').replace(/^sb:\/\/[^/]+\//i, '');
}

export class AmqpTestPeer {
    private readonly container = create_container({ treat_modified_as_released: false });
    private server?: Server;
    private readonly sockets = new Set<Socket>();
    private readonly queues = new Map<string, Entity>();
    private readonly topics = new Map<string, Topic>();
    private readonly seenMessageIds = new Map<string, Set<string>>();
    private readonly receivers: ReceiverLink[] = [];
    private readonly locked = new Map<string, LockedMessage>();
    private nextSequence = 1;
    /** Every put-token audience presented, in order. */
    readonly tokenAudiences: string[] = [];
    /** Incremented for every connection accepted; a reconnect shows here. */
    connectionsAccepted = 0;

    /** Starts a peer on 127.0.0.1 and an ephemeral port. */
    static async start(): Promise<AmqpTestPeer> {
        const peer = new AmqpTestPeer();
        await peer.listen();
        return peer;
    }

    get port(): number {
        return (this.server!.address() as AddressInfo).port;
    }

    get connectionString(): string {
        return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=x;SharedAccessKey=y;UseDevelopmentEmulator=true`;
    }

    createQueue(path: string, options: QueueOptions = {}): void {
        const entity = new Entity(path, { maxDeliveryCount: 10, lockDurationMs: 60_000, ...options });
        entity.deadLetter = new Entity(`${path}/$DeadLetterQueue`, { lockDurationMs: 60_000 });
        this.queues.set(path.toLowerCase(), entity);
    }

    createTopic(path: string, options: { duplicateDetection?: boolean } = {}): void {
        this.topics.set(path.toLowerCase(), {
            path,
            subscriptions: [],
            duplicateDetection: options.duplicateDetection ?? false,
        });
    }

    /** A subscription receives the topic's messages its filter accepts (a correlation or SQL filter in Azure). */
    createSubscription(topic: string, name: string, filter: SubscriptionFilter = () => true): void {
        const t = this.topics.get(topic.toLowerCase());
        if (!t) throw new Error(`No topic ${topic}`);
        const path = `${t.path}/Subscriptions/${name}`;
        this.createQueue(path);
        t.subscriptions.push({ entity: this.queues.get(path.toLowerCase())!, filter });
    }

    /** Messages waiting (not locked) in a queue, subscription or dead-letter queue. */
    messages(path: string): StoredMessage[] {
        return [...(this.entity(path)?.available ?? [])];
    }

    /** Messages currently locked by a receiver. */
    lockedCount(path: string): number {
        return [...this.locked.values()].filter((l) => l.entity.path.toLowerCase() === path.toLowerCase()).length;
    }

    /** Cuts every open connection, as a network failure would. The server keeps listening. */
    dropConnections(): void {
        for (const socket of this.sockets) socket.destroy();
    }

    async stop(): Promise<void> {
        this.dropConnections();
        await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    }

    private entity(path: string): Entity | undefined {
        const key = path.toLowerCase();
        if (key.endsWith(DEAD_LETTER_SUFFIX)) {
            return this.queues.get(key.slice(0, -DEAD_LETTER_SUFFIX.length))?.deadLetter;
        }
        return this.queues.get(key);
    }

    private async listen(): Promise<void> {
        const c = this.container;
        c.on('sender_open', (context: EventContext) => this.onReceiverAttached(context));
        c.on('receiver_open', (context: EventContext) => this.onSenderAttached(context));
        c.on('message', (context: EventContext) => this.onMessage(context));
        c.on('sendable', (context: EventContext) => this.pump(context.sender));
        // A receive call that timed out asks us to drain: send what we have, then give back the unused credit.
        c.on('sender_draining', (context: EventContext) => {
            this.pump(context.sender);
            context.sender!.set_drained(true);
        });
        c.on('accepted', (context: EventContext) => this.settle(context, 'complete'));
        c.on('released', (context: EventContext) => this.settle(context, 'abandon'));
        c.on('modified', (context: EventContext) => this.settle(context, 'abandon'));
        c.on('rejected', (context: EventContext) => this.settle(context, 'deadLetter'));
        c.on('sender_close', (context: EventContext) => this.releaseLink(context.sender));
        c.on('disconnected', (context: EventContext) => this.releaseConnection(context.connection));
        c.on('connection_close', (context: EventContext) => this.releaseConnection(context.connection));
        c.on('error', () => undefined);
        this.server = c.listen({ port: 0, host: '127.0.0.1' });
        this.server.on('connection', (socket: Socket) => {
            this.connectionsAccepted++;
            this.sockets.add(socket);
            socket.on('close', () => this.sockets.delete(socket));
        });
        await new Promise<void>((resolve, reject) => {
            this.server!.once('listening', () => resolve());
            this.server!.once('error', reject);
        });
    }

    /** The client attached a receiver: we are its sender. */
    private onReceiverAttached(context: EventContext): void {
        const sender = context.sender!;
        const remoteSource = frames(sender).remote.attach?.source;
        const address = addressOf(remoteSource);
        if (address === '$cbs' || address.toLowerCase().endsWith('$management')) {
            sender.set_source({ address });
            return;
        }
        const entity = this.entity(address);
        if (!entity) {
            sender.set_source({ address });
            sender.close({
                condition: 'amqp:not-found',
                description: `The messaging entity '${address}' could not be found.`,
            });
            return;
        }
        const filter = remoteSource?.filter;
        if (entity.options.sessions || (filter && SESSION_FILTER in filter)) {
            const requested = unwrapFilterValue(filter?.[SESSION_FILTER]);
            const sessionId = typeof requested === 'string' ? requested : this.nextFreeSession(entity);
            if (sessionId === undefined || entity.lockedSessions.has(sessionId)) {
                sender.set_source({ address });
                sender.close({
                    condition:
                        sessionId === undefined ? 'com.microsoft:timeout' : 'com.microsoft:session-cannot-be-locked',
                    description:
                        sessionId === undefined
                            ? 'No unlocked session is available.'
                            : `Session ${sessionId} is locked.`,
                });
                return;
            }
            entity.lockedSessions.set(sessionId, sender);
            sender.set_source({ address, filter: { [SESSION_FILTER]: sessionId } });
            frames(sender).local.attach.properties = {
                'com.microsoft:locked-until-utc': amqpTypes.wrap_long(ticks(new Date(Date.now() + 60_000))),
            };
            this.receivers.push({ sender, entity, sessionId });
            return;
        }
        sender.set_source({ address });
        this.receivers.push({ sender, entity });
    }

    /** The client attached a sender: we receive its messages. */
    private onSenderAttached(context: EventContext): void {
        const receiver = context.receiver!;
        const address = addressOf(frames(receiver).remote.attach?.target);
        receiver.set_target({ address });
        if (address === '$cbs' || address.toLowerCase().endsWith('$management')) return;
        if (!this.entity(address) && !this.topics.has(address.toLowerCase())) {
            receiver.close({
                condition: 'amqp:not-found',
                description: `The messaging entity '${address}' could not be found.`,
            });
        }
    }

    private nextFreeSession(entity: Entity): string | undefined {
        for (const m of entity.available) {
            if (m.sessionId !== undefined && !entity.lockedSessions.has(m.sessionId)) return m.sessionId;
        }
        return undefined;
    }

    private onMessage(context: EventContext): void {
        const receiver = context.receiver!;
        const address = addressOf(receiver.target);
        const raw = context.message as unknown;
        if (address === '$cbs') return this.answerCbs(context);
        if (address.toLowerCase().endsWith('$management')) return this.answerManagement(context, address);
        const format = (context as unknown as { format?: number }).format;
        const messages: RheaMessage[] =
            format === BATCH_FORMAT ? this.unbatch(raw as Buffer) : [context.message as RheaMessage];
        for (const message of messages) this.enqueue(address, message);
    }

    private unbatch(buffer: Buffer): RheaMessage[] {
        const outer = amqpMessage.decode(buffer) as { body?: { content?: unknown; multiple?: boolean } };
        const content = outer.body?.content;
        const sections = outer.body?.multiple ? (content as Buffer[]) : [content as Buffer];
        return sections.map((section) => amqpMessage.decode(section) as unknown as RheaMessage);
    }

    private enqueue(address: string, message: RheaMessage): void {
        const topic = this.topics.get(address.toLowerCase());
        if (topic) {
            if (!this.firstTime(topic.path, message, topic.duplicateDetection)) return;
            for (const sub of topic.subscriptions) {
                if (sub.filter(message)) this.store(sub.entity, structuredClone(message));
            }
            return;
        }
        const entity = this.entity(address);
        if (!entity) return;
        if (!this.firstTime(entity.path, message, entity.options.duplicateDetection ?? false)) return;
        this.store(entity, message);
    }

    private firstTime(path: string, message: RheaMessage, detect: boolean): boolean {
        if (!detect || message.message_id === undefined) return true;
        let seen = this.seenMessageIds.get(path);
        if (!seen) this.seenMessageIds.set(path, (seen = new Set()));
        const id = String(message.message_id);
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
    }

    private store(entity: Entity, message: RheaMessage, deliveryCount = 0): void {
        // The SDK's lock renewer needs a message id; the real broker always has one.
        if (message.message_id === undefined) message.message_id = randomUUID();
        entity.available.push({
            message,
            sequenceNumber: this.nextSequence++,
            enqueuedAt: new Date(),
            deliveryCount,
            sessionId: typeof message.group_id === 'string' ? message.group_id : undefined,
        });
        this.pumpAll();
    }

    private pumpAll(): void {
        for (const link of this.receivers) this.pump(link.sender);
    }

    private pump(sender: Sender | undefined): void {
        const link = this.receivers.find((r) => r.sender === sender);
        if (!link || !sender) return;
        const { entity } = link;
        while (sender.sendable()) {
            const index = entity.available.findIndex((m) =>
                link.sessionId !== undefined
                    ? m.sessionId === link.sessionId
                    : m.sessionId === undefined || !entity.options.sessions,
            );
            if (index < 0) return;
            const [stored] = entity.available.splice(index, 1);
            const tag = Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
            const lockedUntil = new Date(Date.now() + (entity.options.lockDurationMs ?? 60_000));
            const outgoing: RheaMessage = {
                ...stored!.message,
                delivery_count: stored!.deliveryCount,
                message_annotations: {
                    ...(stored!.message.message_annotations ?? {}),
                    'x-opt-sequence-number': stored!.sequenceNumber,
                    'x-opt-enqueued-time': stored!.enqueuedAt,
                    'x-opt-locked-until': lockedUntil,
                },
            };
            const delivery = sender.send(outgoing, tag);
            this.locked.set(this.deliveryKey(sender, delivery), {
                stored: stored!,
                entity,
                sender,
                lockToken: tag.toString('hex'),
            });
        }
    }

    private deliveryKey(sender: Sender, delivery: Delivery): string {
        return `${sender.connection.options.id ?? ''}/${sender.name}/${delivery.id}`;
    }

    private settle(context: EventContext, outcome: 'complete' | 'abandon' | 'deadLetter'): void {
        const delivery = context.delivery!;
        const sender = context.sender!;
        const key = this.deliveryKey(sender, delivery);
        const locked = this.locked.get(key);
        if (!locked) return;
        this.locked.delete(key);
        const { stored, entity } = locked;
        if (outcome === 'abandon') {
            this.requeue(entity, stored);
        } else if (outcome === 'deadLetter') {
            const error = (delivery.remote_state as { error?: { condition?: string; info?: Record<string, unknown> } })
                ?.error;
            const info = error?.condition === DEAD_LETTER_CONDITION ? (error.info ?? {}) : {};
            this.moveToDeadLetter(entity, stored, info);
        }
        // Second-mode settlement: the client waits for us to settle before its promise resolves. The state we
        // settle with must carry no error, or the SDK reports the settlement as failed.
        delivery.update(
            true,
            OUTCOMES[outcome === 'complete' ? 'accepted' : outcome === 'abandon' ? 'released' : 'rejected'](),
        );
        this.pump(sender);
    }

    private requeue(entity: Entity, stored: StoredMessage): void {
        stored.deliveryCount++;
        if (stored.deliveryCount >= (entity.options.maxDeliveryCount ?? 10)) {
            this.moveToDeadLetter(entity, stored, {
                DeadLetterReason: 'MaxDeliveryCountExceeded',
                DeadLetterErrorDescription: `Message could not be consumed after ${stored.deliveryCount} delivery attempts.`,
            });
            return;
        }
        // Back in sequence order, so one session's messages stay in the order they were sent.
        const later = entity.available.findIndex((m) => m.sequenceNumber > stored.sequenceNumber);
        entity.available.splice(later < 0 ? entity.available.length : later, 0, stored);
        this.pumpAll();
    }

    private moveToDeadLetter(entity: Entity, stored: StoredMessage, info: Record<string, unknown>): void {
        const dlq = entity.deadLetter;
        if (!dlq) return;
        const message: RheaMessage = {
            ...stored.message,
            application_properties: { ...(stored.message.application_properties ?? {}), ...info },
            message_annotations: {
                ...(stored.message.message_annotations ?? {}),
                'x-opt-deadletter-source': entity.path,
            },
        };
        dlq.available.push({ ...stored, message, sequenceNumber: this.nextSequence++ });
        this.pumpAll();
    }

    /** A link went away: its locks are lost and its session is free again, as on the real broker. */
    private releaseLink(sender: Sender | undefined): void {
        if (!sender) return;
        for (const [key, locked] of [...this.locked]) {
            if (locked.sender === sender) {
                this.locked.delete(key);
                this.requeue(locked.entity, locked.stored);
            }
        }
        const index = this.receivers.findIndex((r) => r.sender === sender);
        if (index >= 0) {
            const [link] = this.receivers.splice(index, 1);
            if (link!.sessionId !== undefined && link!.entity.lockedSessions.get(link!.sessionId) === sender) {
                link!.entity.lockedSessions.delete(link!.sessionId);
            }
        }
    }

    private releaseConnection(connection: Connection | undefined): void {
        if (!connection) return;
        for (const link of [...this.receivers]) {
            if (link.sender.connection === connection) this.releaseLink(link.sender);
        }
    }

    private reply(context: EventContext, response: Record<string, unknown>): void {
        const request = context.message!;
        const replyTo = String(request.reply_to ?? '');
        const connection = context.connection;
        const replyLink = connection.find_sender((s: Sender) => s.name === replyTo || addressOf(s.target) === replyTo);
        replyLink?.send({ ...response, correlation_id: request.message_id, to: replyTo } as unknown as Message);
    }

    private answerCbs(context: EventContext): void {
        const request = context.message!;
        const props = request.application_properties ?? {};
        if (props.operation === 'put-token') this.tokenAudiences.push(String(props.name));
        this.reply(context, {
            body: undefined,
            application_properties: { 'status-code': 202, 'status-description': 'Accepted' },
        });
    }

    private answerManagement(context: EventContext, address: string): void {
        const request = context.message!;
        const operation = String(request.application_properties?.operation ?? '');
        const lockedUntil = new Date(Date.now() + 60_000);
        if (operation === 'com.microsoft:renew-lock') {
            const tokens = ((request.body as Record<string, unknown>)?.['lock-tokens'] as unknown[]) ?? [];
            this.reply(context, {
                application_properties: { statusCode: 200 },
                body: { expirations: tokens.map(() => lockedUntil) },
            });
            return;
        }
        if (operation === 'com.microsoft:renew-session-lock') {
            this.reply(context, { application_properties: { statusCode: 200 }, body: { expiration: lockedUntil } });
            return;
        }
        this.reply(context, {
            application_properties: {
                statusCode: 501,
                statusDescription: `${operation} is not implemented by the test peer (${address}).`,
                errorCondition: 'amqp:not-implemented',
            },
        });
    }
}
