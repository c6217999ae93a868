import { randomUUID } from 'node:crypto';
import { AddressInfo, Server, Socket } from 'node:net';
import { create_container, types as amqpTypes } from 'rhea';
import type { Connection, Delivery, EventContext, Message, Sender } from 'rhea';
import {
    addressOf,
    AmqpMessage,
    BATCH_FORMAT,
    CONDITIONS,
    DEAD_LETTER_CONDITION,
    DEAD_LETTER_SUFFIX,
    frames,
    LOCKED_UNTIL_PROPERTY,
    lockTokenOfTag,
    lockTokenTag,
    OUTCOMES,
    SESSION_FILTER,
    ticks,
    unbatch,
    unwrapFilterValue,
} from './amqpWire';
import {
    DEFAULT_DUPLICATE_WINDOW_MS,
    DuplicateHistory,
    Entity,
    EntityOptions,
    filterAccepts,
    LockedMessage,
    StoredMessage,
    SubscriptionFilter,
    Topic,
} from './entities';
import { answerManagement, ManagementTarget } from './management';

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

type Settlement = 'complete' | 'abandon' | 'deadLetter';

interface ReceiverLink {
    sender: Sender;
    entity: Entity;
    /** Set for a session receiver: it only gets that session's messages. */
    sessionId?: string;
}

export interface LocalServiceBusOptions {
    /** Interface to listen on; loopback unless told otherwise (the broker checks no credentials). */
    host?: string;
    /** 0 (default) for any free port. */
    port?: number;
    /** How often expired message and session locks are looked for. Default 250 ms. */
    lockSweepMs?: number;
}

/**
 * A Service Bus namespace on loopback that the real `@azure/service-bus` and `Azure.Messaging.ServiceBus`
 * clients talk to with a connection string carrying `UseDevelopmentEmulator=true` (plain AMQP over TCP, no TLS).
 * It answers CBS put-token (any token: it authenticates no one), takes single and batched sends to queues and
 * topics, routes topic messages to the subscriptions whose filter accepts them, assigns sequence numbers itself,
 * drops duplicates within the detection window, and serves peek-lock receivers: per-message locks (or one lock
 * per session), complete / abandon / dead-letter with reason and description, renew-lock and renew-session-lock,
 * redelivery when a lock expires or its link goes away, and `MaxDeliveryCountExceeded` dead-lettering.
 * Messages are held in memory: they do not survive the broker.
 */
export class LocalServiceBus implements ManagementTarget {
    private readonly container = create_container({ treat_modified_as_released: false });
    private server?: Server;
    private sweeper?: NodeJS.Timeout;
    private readonly sockets = new Set<Socket>();
    private readonly queues = new Map<string, Entity>();
    private readonly topics = new Map<string, Topic>();
    private readonly duplicates = new DuplicateHistory();
    private readonly receivers: ReceiverLink[] = [];
    private readonly locked = new Map<string, LockedMessage>();
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
        return [...this.locked.values()].filter((l) => l.entity.path.toLowerCase() === path.toLowerCase()).length;
    }

    /** Cuts every open connection, as a network failure would. The server keeps listening. */
    dropConnections(): void {
        for (const socket of this.sockets) socket.destroy();
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
        c.on('accepted', (context: EventContext) => this.onDisposition(context, 'complete'));
        c.on('released', (context: EventContext) => this.onDisposition(context, 'abandon'));
        c.on('modified', (context: EventContext) => this.onDisposition(context, 'abandon'));
        c.on('rejected', (context: EventContext) => this.onDisposition(context, 'deadLetter'));
        c.on('sender_close', (context: EventContext) => this.releaseLink(context.sender));
        c.on('disconnected', (context: EventContext) => this.releaseConnection(context.connection));
        c.on('connection_close', (context: EventContext) => this.releaseConnection(context.connection));
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
        this.sweeper = setInterval(() => this.expireLocks(), options.lockSweepMs ?? 250);
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
            sender.close({
                condition: CONDITIONS.notFound,
                description: `The messaging entity '${address}' could not be found.`,
            });
            return;
        }
        const filter = remoteSource?.filter;
        const sessionful = filter !== undefined && filter !== null && SESSION_FILTER in filter;
        if (sessionful !== (entity.options.sessions ?? false)) {
            sender.close({
                condition: CONDITIONS.notAllowed,
                description: sessionful
                    ? `'${address}' does not require sessions; receive from it without a session.`
                    : `'${address}' requires sessions; accept a session to receive from it.`,
            });
            return;
        }
        if (!sessionful) {
            this.receivers.push({ sender, entity });
            return;
        }
        const requested = unwrapFilterValue(filter?.[SESSION_FILTER]);
        const sessionId = typeof requested === 'string' ? requested : entity.nextFreeSession();
        if (sessionId === undefined || entity.sessions.has(sessionId)) {
            sender.close(
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
        this.receivers.push({ sender, entity, sessionId });
    }

    /** The client attached a sender: we receive its messages. */
    private onSenderAttached(context: EventContext): void {
        const receiver = context.receiver!;
        const address = addressOf(frames(receiver).remote.attach?.target);
        receiver.set_target({ address });
        if (address === '$cbs' || address.toLowerCase().endsWith('$management')) return;
        if (!this.entity(address) && !this.topics.has(address.toLowerCase())) {
            receiver.close({
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
            return this.reply(context, { ...answerManagement(this, entityPath, context.message!) });
        }
        const format = (context as unknown as { format?: number }).format;
        const raw = context.message as unknown;
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
                if (filterAccepts(sub.filter, message)) sub.entity.accept(structuredClone(message));
            }
            return this.pumpAll();
        }
        const entity = this.entity(address);
        if (!entity) return;
        const window = entity.options.duplicateDetectionWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS;
        if (!this.firstTime(entity.path, message, entity.options.duplicateDetection ?? false, window)) return;
        entity.accept(message);
        this.pumpAll();
    }

    private firstTime(path: string, message: AmqpMessage, detect: boolean, windowMs: number): boolean {
        return !detect || this.duplicates.firstTime(path.toLowerCase(), message.message_id, windowMs);
    }

    private pumpAll(): void {
        for (const link of [...this.receivers]) this.pump(link.sender);
    }

    private pump(sender: Sender | undefined): void {
        const link = this.receivers.find((r) => r.sender === sender);
        if (!link || !sender) return;
        const { entity } = link;
        while (sender.sendable()) {
            const stored = entity.nextFor(link.sessionId);
            if (!stored) return;
            const tag = lockTokenTag(randomUUID());
            const lockedUntil =
                link.sessionId !== undefined
                    ? entity.sessions.get(link.sessionId)!.lockedUntil
                    : new Date(Date.now() + entity.lockDurationMs);
            const outgoing: AmqpMessage = {
                ...stored.message,
                delivery_count: stored.deliveryCount,
                message_annotations: {
                    ...(stored.message.message_annotations ?? {}),
                    'x-opt-sequence-number': amqpTypes.wrap_long(stored.sequenceNumber),
                    'x-opt-enqueued-time': stored.enqueuedAt,
                    'x-opt-locked-until': lockedUntil,
                    ...(entity.deadLetter ? {} : { 'x-opt-deadletter-source': entity.path.split('/$')[0] }),
                },
            };
            const delivery = sender.send(outgoing, tag);
            const deliveryKey = this.deliveryKey(sender, delivery);
            this.locked.set(deliveryKey, {
                stored,
                entity,
                sender,
                deliveryKey,
                lockToken: lockTokenOfTag(tag),
                lockedUntil,
                settle: (state) => delivery.update(true, state),
            });
        }
    }

    private deliveryKey(sender: Sender, delivery: Delivery): string {
        return `${sender.connection.options.id ?? ''}/${sender.name}/${delivery.id}`;
    }

    private onDisposition(context: EventContext, outcome: Settlement): void {
        const delivery = context.delivery!;
        const locked = this.locked.get(this.deliveryKey(context.sender!, delivery));
        if (!locked) {
            // Settled once already, or its lock expired and the message went back to the queue.
            delivery.update(
                true,
                OUTCOMES.refused(
                    CONDITIONS.messageLockLost,
                    'The lock supplied is invalid: it expired, or the message was already settled.',
                ),
            );
            return;
        }
        const error = (delivery.remote_state as { error?: { condition?: string; info?: Record<string, unknown> } })
            ?.error;
        const info = error?.condition === DEAD_LETTER_CONDITION ? (error.info ?? {}) : {};
        this.finish(locked, outcome, info);
    }

    private finish(locked: LockedMessage, outcome: Settlement, deadLetterInfo: Record<string, unknown>): void {
        this.locked.delete(locked.deliveryKey);
        const { stored, entity } = locked;
        if (outcome === 'abandon') this.redeliver(entity, stored);
        else if (outcome === 'deadLetter') this.moveToDeadLetter(entity, stored, deadLetterInfo);
        // Second-mode settlement: the client waits for us to settle before its promise resolves. The state we
        // settle with must carry no error, or the SDK reports the settlement as failed.
        locked.settle(
            outcome === 'complete'
                ? OUTCOMES.accepted()
                : outcome === 'abandon'
                  ? OUTCOMES.released()
                  : OUTCOMES.rejected(),
        );
        this.pump(locked.sender);
    }

    /** Back to the queue with one more delivery counted, or to the dead-letter queue past maxDeliveryCount. */
    private redeliver(entity: Entity, stored: StoredMessage): void {
        stored.deliveryCount++;
        if (stored.deliveryCount >= entity.maxDeliveryCount) {
            this.moveToDeadLetter(entity, stored, {
                DeadLetterReason: 'MaxDeliveryCountExceeded',
                DeadLetterErrorDescription: `Message could not be consumed after ${stored.deliveryCount} delivery attempts.`,
            });
            return;
        }
        entity.putBack(stored);
        this.pumpAll();
    }

    private moveToDeadLetter(entity: Entity, stored: StoredMessage, info: Record<string, unknown>): void {
        const dlq = entity.deadLetter;
        if (!dlq) return;
        const dead = dlq.accept({
            ...stored.message,
            application_properties: { ...(stored.message.application_properties ?? {}), ...info },
        });
        dead.deliveryCount = stored.deliveryCount;
        this.pumpAll();
    }

    /** Message locks and session locks past their expiry are lost; their messages are delivered again. */
    private expireLocks(now = Date.now()): void {
        for (const locked of [...this.locked.values()]) {
            if (locked.entity.options.sessions || locked.lockedUntil.getTime() > now) continue;
            this.locked.delete(locked.deliveryKey);
            this.redeliver(locked.entity, locked.stored);
        }
        for (const link of [...this.receivers]) {
            if (link.sessionId === undefined) continue;
            const lock = link.entity.sessions.get(link.sessionId);
            if (!lock || lock.lockedUntil.getTime() > now) continue;
            this.releaseLink(link.sender);
            link.sender.close({
                condition: CONDITIONS.sessionLockLost,
                description: `The session lock of ${link.sessionId} expired.`,
            });
        }
    }

    renewMessageLock(entityPath: string, lockToken: string): Date | undefined {
        const locked = this.lockOf(entityPath, lockToken);
        if (!locked || locked.entity.options.sessions) return undefined;
        locked.lockedUntil = new Date(Date.now() + locked.entity.lockDurationMs);
        return locked.lockedUntil;
    }

    renewSessionLock(entityPath: string, sessionId: string): Date | undefined {
        const entity = this.entity(entityPath);
        const lock = entity?.sessions.get(sessionId);
        if (!entity || !lock) return undefined;
        lock.lockedUntil = new Date(Date.now() + entity.lockDurationMs);
        for (const locked of this.locked.values()) {
            if (locked.sender === lock.sender) locked.lockedUntil = lock.lockedUntil;
        }
        return lock.lockedUntil;
    }

    settleByLockToken(
        entityPath: string,
        lockToken: string,
        outcome: Settlement,
        deadLetter: { reason?: string; description?: string },
    ): boolean {
        const locked = this.lockOf(entityPath, lockToken);
        if (!locked) return false;
        const info: Record<string, unknown> = {};
        if (deadLetter.reason !== undefined) info.DeadLetterReason = deadLetter.reason;
        if (deadLetter.description !== undefined) info.DeadLetterErrorDescription = deadLetter.description;
        this.finish(locked, outcome, info);
        return true;
    }

    private lockOf(entityPath: string, lockToken: string): LockedMessage | undefined {
        const entity = this.entity(entityPath);
        return [...this.locked.values()].find((l) => l.entity === entity && l.lockToken === lockToken);
    }

    /** A link went away: its locks are lost and its session is free again, as on the real broker. */
    private releaseLink(sender: Sender | undefined): void {
        if (!sender) return;
        for (const locked of [...this.locked.values()]) {
            if (locked.sender === sender) {
                this.locked.delete(locked.deliveryKey);
                this.redeliver(locked.entity, locked.stored);
            }
        }
        const index = this.receivers.findIndex((r) => r.sender === sender);
        if (index < 0) return;
        const [link] = this.receivers.splice(index, 1);
        if (link!.sessionId !== undefined && link!.entity.sessions.get(link!.sessionId)?.sender === sender) {
            link!.entity.sessions.delete(link!.sessionId);
            this.pumpAll();
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
        const replyLink = context.connection.find_sender(
            (s: Sender) => s.name === replyTo || addressOf(s.target) === replyTo,
        );
        replyLink?.send({ ...response, correlation_id: request.message_id, to: replyTo } as unknown as Message);
    }

    private answerCbs(context: EventContext): void {
        const props = context.message!.application_properties ?? {};
        if (props.operation === 'put-token') this.tokenAudiences.push(String(props.name));
        this.reply(context, {
            body: undefined,
            application_properties: { 'status-code': 202, 'status-description': 'Accepted' },
        });
    }
}
