import { randomUUID } from 'node:crypto';
import { AddressInfo, Server, Socket } from 'node:net';
import { create_container, message as amqpMessage, types as amqpTypes } from 'rhea';
import type { EventContext, Message, Sender } from 'rhea';
import {
    addressOf,
    AmqpMessage,
    BATCH_FORMAT,
    CONDITIONS,
    copyMessage,
    DEAD_LETTER_SUFFIX,
    frames,
    refuseLink,
    LOCKED_UNTIL_PROPERTY,
    SESSION_FILTER,
    ticks,
    unbatch,
    unwrapFilterValue,
} from './amqpWire';
import { Deliveries } from './deliveries';
import {
    DEFAULT_DUPLICATE_WINDOW_MS,
    DuplicateHistory,
    Entity,
    EntityOptions,
    filterAccepts,
    StoredMessage,
    SubscriptionFilter,
    Topic,
} from './entities';
import { answerManagement } from './management';

export type { StoredMessage, SubscriptionFilter, EntityOptions as QueueOptions } from './entities';

/** Annotations only the broker sets; a sender's values are dropped. */
const BROKER_ANNOTATIONS = [
    'x-opt-sequence-number',
    'x-opt-enqueue-sequence-number',
    'x-opt-enqueued-time',
    'x-opt-locked-until',
    'x-opt-lock-token',
    'x-opt-deadletter-source',
];

interface SaslServer {
    outcome?: boolean;
    username?: string;
    start(response?: Buffer): void;
}

/** A SASL server mechanism that lets every client in (the broker listens on loopback and checks no token). */
class AcceptingSasl implements SaslServer {
    outcome?: boolean;
    username?: string;
    start(): void {
        this.outcome = true;
        this.username = 'local';
    }
}

export interface LocalServiceBusOptions {
    /** Interface to listen on; loopback unless told otherwise (the broker checks no credentials). */
    host?: string;
    /** 0 (default) for any free port. */
    port?: number;
    /** How often expired message and session locks are looked for. Default 250 ms. */
    lockSweepMs?: number;
    /** The largest message a sender may send: 256 KiB as the Standard tier (Premium: up to 100 MiB). */
    maxMessageSizeBytes?: number;
}

export const STANDARD_MAX_MESSAGE_BYTES = 256 * 1024;

/**
 * A Service Bus namespace on loopback that the real `@azure/service-bus` client talks to with a connection string carrying `UseDevelopmentEmulator=true` (plain AMQP over TCP, no TLS).
 * It answers CBS put-token (any token: it authenticates no one), takes single and batched sends to queues and
 * topics, routes topic messages to the subscriptions whose filter accepts them, assigns sequence numbers itself,
 * drops duplicates within the detection window, and serves peek-lock receivers: per-message locks (or one lock
 * per session), complete / abandon / dead-letter with reason and description, renew-lock and renew-session-lock,
 * redelivery when a lock expires or its link goes away, and `MaxDeliveryCountExceeded` dead-lettering.
 * Messages are held in memory: they do not survive the broker.
 */
export class LocalServiceBus {
    private readonly container = create_container({ treat_modified_as_released: false });
    private server?: Server;
    private sweeper?: NodeJS.Timeout;
    private readonly sockets = new Set<Socket>();
    private dropOnSettlement = false;
    private readonly queues = new Map<string, Entity>();
    private readonly topics = new Map<string, Topic>();
    private readonly duplicates = new DuplicateHistory();
    private readonly deliveries = new Deliveries((path) => this.entity(path));
    private maxMessageSize = STANDARD_MAX_MESSAGE_BYTES;
    /** Every put-token audience presented, in order. */
    readonly tokenAudiences: string[] = [];
    /** Incremented for every connection accepted; a reconnect shows here. */
    connectionsAccepted = 0;

    /** Starts a broker on 127.0.0.1 and an ephemeral port (or as `options` say). */
    static async start(options: LocalServiceBusOptions = {}): Promise<LocalServiceBus> {
        const broker = new LocalServiceBus();
        await broker.listen(options);
        return broker;
    }

    get port(): number {
        return (this.server!.address() as AddressInfo).port;
    }

    /** What a client needs: the SDKs connect over plain TCP to this endpoint when told it is an emulator. */
    get connectionString(): string {
        const { address } = this.server!.address() as AddressInfo;
        const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;
        return (
            `Endpoint=sb://${host.includes(':') ? `[${host}]` : host}:${this.port};` +
            `SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=local;UseDevelopmentEmulator=true`
        );
    }

    createQueue(path: string, options: EntityOptions = {}): void {
        if (this.queues.has(path.toLowerCase())) return;
        const entity = new Entity(path, options);
        entity.deadLetter = new Entity(`${path}/$DeadLetterQueue`, { lockDurationMs: options.lockDurationMs });
        this.queues.set(path.toLowerCase(), entity);
    }

    createTopic(path: string, options: Pick<EntityOptions, 'duplicateDetection' | 'duplicateDetectionWindowMs'> = {}) {
        if (this.topics.has(path.toLowerCase())) return;
        this.topics.set(path.toLowerCase(), {
            path,
            subscriptions: new Map(),
            duplicateDetection: options.duplicateDetection ?? false,
            duplicateDetectionWindowMs: options.duplicateDetectionWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
        });
    }

    /**
     * A subscription receives the topic's messages its filter accepts from the moment it exists (a correlation
     * or SQL filter in Azure). Creating one that exists changes nothing.
     */
    createSubscription(
        topic: string,
        name: string,
        filter: SubscriptionFilter = () => true,
        options: EntityOptions = {},
    ): void {
        const t = this.topics.get(topic.toLowerCase());
        if (!t) throw new Error(`No topic ${topic} on the local broker.`);
        if (t.subscriptions.has(name.toLowerCase())) return;
        const path = `${t.path}/Subscriptions/${name}`;
        this.createQueue(path, options);
        t.subscriptions.set(name.toLowerCase(), { entity: this.queues.get(path.toLowerCase())!, filter });
    }

    hasEntity(path: string): boolean {
        return this.entity(path) !== undefined || this.topics.has(path.toLowerCase());
    }

    /** Messages waiting (not locked) in a queue, subscription or dead-letter queue. */
    messages(path: string): StoredMessage[] {
        return [...(this.entity(path)?.available ?? [])];
    }

    /** Messages currently locked by a receiver. */
    lockedCount(path: string): number {
        return [...this.deliveries.locked.values()].filter((l) => l.entity.path.toLowerCase() === path.toLowerCase())
            .length;
    }

    /**
     * The next settlement a receiver sends is not answered: every connection is cut instead, so the settlement is
     * in flight when its link goes (the message stays unsettled and comes back).
     */
    dropConnectionsOnNextSettlement(): void {
        this.dropOnSettlement = true;
    }

    /**
     * Cuts every open connection, as a network failure would. The server keeps listening. The socket is destroyed
     * with an error: rhea's server side learns of a lost connection from the socket's `error` or `end`, not from
     * `close`, and without it the dropped links kept their session locks and messages until the locks expired.
     */
    dropConnections(): void {
        for (const socket of this.sockets) socket.destroy(new Error('Connection dropped by the local broker.'));
    }

    async stop(): Promise<void> {
        clearInterval(this.sweeper);
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

    private async listen(options: LocalServiceBusOptions): Promise<void> {
        this.maxMessageSize = options.maxMessageSizeBytes ?? STANDARD_MAX_MESSAGE_BYTES;
        const c = this.container;
        // The JavaScript SDK signs in with SASL ANONYMOUS, the .NET one with MSSBCBS (Service Bus's "the token
        // comes by CBS"); either way the broker takes the put-token that follows and authenticates no one.
        const mechanisms = c.sasl_server_mechanisms as unknown as Record<string, () => SaslServer>;
        mechanisms.ANONYMOUS = () => new AcceptingSasl();
        mechanisms.MSSBCBS = () => new AcceptingSasl();
        c.on('sender_open', (context: EventContext) => this.onReceiverAttached(context));
        c.on('receiver_open', (context: EventContext) => this.onSenderAttached(context));
        c.on('message', (context: EventContext) => this.onMessage(context));
        c.on('sendable', (context: EventContext) => this.deliveries.pump(context.sender));
        // A receive call that timed out asks us to drain: send what we have, then give back the unused credit.
        c.on('sender_draining', (context: EventContext) => {
            this.deliveries.pump(context.sender);
            context.sender!.set_drained(true);
        });
        const settle = (outcome: Parameters<Deliveries['onDisposition']>[1]) => (context: EventContext) => {
            if (this.dropOnSettlement && this.deliveries.settles(context)) {
                this.dropOnSettlement = false;
                this.dropConnections();
                return;
            }
            this.deliveries.onDisposition(context, outcome);
        };
        c.on('accepted', settle('complete'));
        c.on('released', settle('abandon'));
        c.on('modified', settle('abandon'));
        c.on('rejected', settle('deadLetter'));
        c.on('sender_close', (context: EventContext) => this.deliveries.releaseLink(context.sender));
        c.on('disconnected', (context: EventContext) => this.deliveries.releaseConnection(context.connection));
        c.on('connection_close', (context: EventContext) => this.deliveries.releaseConnection(context.connection));
        c.on('error', () => undefined);
        this.server = c.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
        this.server.on('connection', (socket: Socket) => {
            this.connectionsAccepted++;
            this.sockets.add(socket);
            socket.on('close', () => this.sockets.delete(socket));
        });
        await new Promise<void>((resolve, reject) => {
            this.server!.once('listening', () => resolve());
            this.server!.once('error', reject);
        });
        this.sweeper = setInterval(() => this.deliveries.expireLocks(), options.lockSweepMs ?? 250);
        this.sweeper.unref();
    }

    /** The client attached a receiver: we are its sender. */
    private onReceiverAttached(context: EventContext): void {
        const sender = context.sender!;
        const remoteSource = frames(sender).remote.attach?.source;
        const address = addressOf(remoteSource);
        sender.set_source({ address });
        if (address === '$cbs' || address.toLowerCase().endsWith('$management')) return;
        const entity = this.entity(address);
        if (!entity) {
            refuseLink(sender, {
                condition: CONDITIONS.notFound,
                description: `The messaging entity '${address}' could not be found.`,
            });
            return;
        }
        const filter = remoteSource?.filter;
        const sessionful = filter !== undefined && filter !== null && SESSION_FILTER in filter;
        if (sessionful !== (entity.options.sessions ?? false)) {
            refuseLink(sender, {
                condition: CONDITIONS.notAllowed,
                description: sessionful
                    ? `'${address}' does not require sessions; receive from it without a session.`
                    : `'${address}' requires sessions; accept a session to receive from it.`,
            });
            return;
        }
        if (!sessionful) {
            this.deliveries.receivers.push({ sender, entity });
            return;
        }
        const requested = unwrapFilterValue(filter?.[SESSION_FILTER]);
        const sessionId = typeof requested === 'string' ? requested : entity.nextFreeSession();
        if (sessionId === undefined || entity.sessions.has(sessionId)) {
            refuseLink(
                sender,
                sessionId === undefined
                    ? { condition: CONDITIONS.timeout, description: 'No unlocked session is available.' }
                    : {
                          condition: CONDITIONS.sessionCannotBeLocked,
                          description: `Session ${sessionId} is locked by another receiver.`,
                      },
            );
            return;
        }
        const lockedUntil = new Date(Date.now() + entity.lockDurationMs);
        entity.sessions.set(sessionId, { sender, lockedUntil });
        sender.set_source({ address, filter: { [SESSION_FILTER]: sessionId } });
        frames(sender).local.attach.properties = { [LOCKED_UNTIL_PROPERTY]: amqpTypes.wrap_long(ticks(lockedUntil)) };
        this.deliveries.receivers.push({ sender, entity, sessionId });
    }

    /** The client attached a sender: we receive its messages. */
    private onSenderAttached(context: EventContext): void {
        const receiver = context.receiver!;
        const address = addressOf(frames(receiver).remote.attach?.target);
        receiver.set_target({ address });
        // The SDKs size their batches by this and refuse a larger message before sending it.
        frames(receiver).local.attach.max_message_size = this.maxMessageSize;
        if (address === '$cbs' || address.toLowerCase().endsWith('$management')) return;
        if (!this.entity(address) && !this.topics.has(address.toLowerCase())) {
            refuseLink(receiver, {
                condition: CONDITIONS.notFound,
                description: `The messaging entity '${address}' could not be found.`,
            });
        }
    }

    private onMessage(context: EventContext): void {
        const address = addressOf(context.receiver!.target);
        if (address === '$cbs') return this.answerCbs(context);
        if (address.toLowerCase().endsWith('$management')) {
            const entityPath = address.replace(/\/\$management$/i, '');
            return this.reply(context, { ...answerManagement(this.deliveries, entityPath, context.message!) });
        }
        const format = (context as unknown as { format?: number }).format;
        const raw = context.message as unknown;
        const size = format === BATCH_FORMAT ? (raw as Buffer).length : amqpMessage.encode(context.message!).length;
        if (size > this.maxMessageSize) {
            context.delivery!.reject({
                condition: CONDITIONS.messageSizeExceeded,
                description: `The message is ${size} bytes; the limit is ${this.maxMessageSize} bytes.`,
            });
            return;
        }
        const messages = format === BATCH_FORMAT ? unbatch(raw as Buffer) : [context.message as AmqpMessage];
        for (const message of messages) this.enqueue(address, message);
    }

    private enqueue(address: string, message: AmqpMessage): void {
        // Whatever the sender put in the annotations the broker owns is not believed: the broker assigns them.
        const annotations = { ...(message.message_annotations ?? {}) };
        for (const name of BROKER_ANNOTATIONS) delete annotations[name];
        message.message_annotations = annotations;
        // The SDK's lock renewer needs a message id; the real broker always has one.
        if (message.message_id === undefined) message.message_id = randomUUID();
        const topic = this.topics.get(address.toLowerCase());
        if (topic) {
            if (!this.firstTime(topic.path, message, topic.duplicateDetection, topic.duplicateDetectionWindowMs))
                return;
            for (const sub of topic.subscriptions.values()) {
                if (filterAccepts(sub.filter, message)) sub.entity.accept(copyMessage(message));
            }
            return this.deliveries.pumpAll();
        }
        const entity = this.entity(address);
        if (!entity) return;
        const window = entity.options.duplicateDetectionWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS;
        if (!this.firstTime(entity.path, message, entity.options.duplicateDetection ?? false, window)) return;
        entity.accept(message);
        this.deliveries.pumpAll();
    }

    private firstTime(path: string, message: AmqpMessage, detect: boolean, windowMs: number): boolean {
        return !detect || this.duplicates.firstTime(path.toLowerCase(), message.message_id, windowMs);
    }

    private reply(context: EventContext, response: Record<string, unknown>): void {
        const request = context.message!;
        const replyTo = String(request.reply_to ?? '');
        const replyLink = context.connection.find_sender(
            (s: Sender) =>
                s.name === replyTo ||
                addressOf(s.target) === replyTo ||
                frames(s).remote.attach?.target?.address === replyTo,
        );
        replyLink?.send({ ...response, correlation_id: request.message_id, to: replyTo } as unknown as Message);
    }

    private answerCbs(context: EventContext): void {
        const props = context.message!.application_properties ?? {};
        if (props.operation === 'put-token') this.tokenAudiences.push(String(props.name));
        this.reply(context, {
            body: undefined,
            // An AMQP int, as Service Bus sends it: the .NET client casts it to Int32 (a bare number goes out as a uint).
            application_properties: { 'status-code': amqpTypes.wrap_int(202), 'status-description': 'Accepted' },
        });
    }
}
