import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { ensureErrorType, HvrError } from '../../shared/errors';
import { Clock, systemClock } from '../../shared/ports';
import { encodeKey, getEntityOrUndefined, tableFor } from '../../shared/state/tables';
import { deadline } from '../../shared/storage/deadline';
import { HostStorage, statusOf } from './hostStorage';

/** Per-session counters of the local queues: last sequence number sent and last one completed. */
export const LOCAL_SESSIONS_TABLE = 'localBusSessions';

/** Storage queue messages are limited to 64 KiB of text. */
const MAX_MESSAGE_CHARS = 64 * 1024;

/** A message as it sits in the local queue: the Service Bus message properties the trigger exposes, and the body. */
export interface LocalBusEnvelope {
    v: 1;
    messageId: string;
    sessionId?: string;
    /** Position in its session (1-based), or 0 for messages without a session. */
    sequenceNumber: number;
    enqueuedTimeUtc: string;
    contentType?: string;
    correlationId?: string;
    subject?: string;
    applicationProperties?: Record<string, string | number | boolean>;
    /** Deliveries that ended in failure so far. */
    deliveryCount: number;
    body: unknown;
}

/** A dead-lettered message: the envelope plus why, as Service Bus records it. */
export interface DeadLetteredMessage extends LocalBusEnvelope {
    deadLetterReason: string;
    deadLetterErrorDescription: string;
    deadLetteredAt: string;
}

export interface SendLocalMessageOptions {
    sessionId?: string;
    messageId?: string;
    contentType?: string;
    correlationId?: string;
    subject?: string;
    applicationProperties?: Record<string, string | number | boolean>;
}

interface SessionRow {
    partitionKey: string;
    rowKey: string;
    lastSent: number;
    lastCompleted: number;
}

export function deadLetterQueueName(queueName: string): string {
    return `${queueName}-deadletter`;
}

/**
 * A Service Bus queue with sessions, stood in for by an Azure Storage queue when no PROVIDER_BUS is configured.
 * Each session's messages get consecutive sequence numbers (table `localBusSessions`), which the receiver
 * uses to deliver them in order, one at a time.
 */
export class LocalSessionQueue {
    constructor(
        readonly queueName: string,
        private readonly host: HostStorage,
        private readonly clock: Clock = systemClock,
    ) {}

    queue(): Promise<QueueClient> {
        return this.host.queue(this.queueName);
    }

    deadLetterQueue(): Promise<QueueClient> {
        return this.host.queue(deadLetterQueueName(this.queueName));
    }

    sessions(): Promise<TableClient> {
        return tableFor(this.host.connection, LOCAL_SESSIONS_TABLE);
    }

    /** Sends one message, as a provider would to the Service Bus queue. Resolves with its envelope. */
    async send(body: unknown, options: SendLocalMessageOptions = {}): Promise<LocalBusEnvelope> {
        const envelope: LocalBusEnvelope = {
            v: 1,
            messageId: options.messageId ?? randomUUID(),
            sessionId: options.sessionId,
            sequenceNumber: 0,
            enqueuedTimeUtc: this.clock.now().toISOString(),
            contentType: options.contentType ?? (typeof body === 'string' ? 'text/plain' : 'application/json'),
            correlationId: options.correlationId,
            subject: options.subject,
            applicationProperties: options.applicationProperties,
            deliveryCount: 0,
            body,
        };
        const size = JSON.stringify(envelope).length;
        if (size > MAX_MESSAGE_CHARS - 32) {
            throw new HvrError(
                'MESSAGE_TOO_LARGE',
                `Message ${envelope.messageId} is ${size} characters; the local queue holds at most ${MAX_MESSAGE_CHARS}.`,
                { size },
            );
        }
        if (options.sessionId !== undefined) envelope.sequenceNumber = await this.nextSequence(options.sessionId);
        const queue = await this.queue();
        await queue.sendMessage(JSON.stringify(envelope), { messageTimeToLive: -1, abortSignal: deadline() });
        return envelope;
    }

    /** Messages currently in the dead-letter queue (peeked, not removed). */
    async peekDeadLetters(max = 32): Promise<DeadLetteredMessage[]> {
        const dlq = await this.deadLetterQueue();
        const peeked = await dlq.peekMessages({ numberOfMessages: Math.min(max, 32), abortSignal: deadline() });
        return peeked.peekedMessageItems.map((m) => JSON.parse(m.messageText) as DeadLetteredMessage);
    }

    /** The last completed (or dead-lettered) sequence number of a session. */
    async lastCompleted(sessionId: string): Promise<number> {
        const row = await getEntityOrUndefined<SessionRow>(
            await this.sessions(),
            encodeKey(this.queueName),
            encodeKey(sessionId),
        );
        return row?.lastCompleted ?? 0;
    }

    /** Records that `sequence` of the session is finished; never moves backwards. */
    async markCompleted(sessionId: string, sequence: number): Promise<void> {
        await this.updateSession(sessionId, (row) => ({
            ...row,
            lastCompleted: Math.max(row.lastCompleted, sequence),
        }));
    }

    private async nextSequence(sessionId: string): Promise<number> {
        const row = await this.updateSession(sessionId, (r) => ({ ...r, lastSent: r.lastSent + 1 }));
        return row.lastSent;
    }

    /** Read-modify-write of a session row with optimistic concurrency, retried on conflicts. */
    private async updateSession(sessionId: string, change: (row: SessionRow) => SessionRow): Promise<SessionRow> {
        const table = await this.sessions();
        const pk = encodeKey(this.queueName);
        const rk = encodeKey(sessionId);
        for (let attempt = 0; attempt < 50; attempt++) {
            const existing = await getEntityOrUndefined<SessionRow>(table, pk, rk);
            const base: SessionRow = existing
                ? { partitionKey: pk, rowKey: rk, lastSent: existing.lastSent, lastCompleted: existing.lastCompleted }
                : { partitionKey: pk, rowKey: rk, lastSent: 0, lastCompleted: 0 };
            const next = change(base);
            try {
                if (existing) {
                    await table.updateEntity(next, 'Replace', { etag: existing.etag, abortSignal: deadline() });
                } else {
                    await table.createEntity(next, { abortSignal: deadline() });
                }
                return next;
            } catch (err) {
                if (statusOf(err) !== 409 && statusOf(err) !== 412) throw err;
            }
        }
        throw new HvrError('CONCURRENT_UPDATE', `Session ${sessionId} of queue ${this.queueName} kept changing.`);
    }
}

/** One received message with the receipt needed to settle it. */
interface HeldMessage {
    envelope: LocalBusEnvelope;
    messageId: string;
    popReceipt: string;
    /** When the lock (visibility timeout) runs out, in the clock's milliseconds. */
    lockedUntil: number;
    receivedAt: number;
}

interface SessionState {
    pending: Map<number, HeldMessage>;
    busy: boolean;
    /** Since when the next expected message has been missing while later ones wait. */
    gapSince?: number;
}

export interface SessionQueuePumpOptions {
    queue: LocalSessionQueue;
    /** Delivers one message to the function; throwing abandons it. */
    deliver(envelope: LocalBusEnvelope, body: unknown, metadata: Record<string, unknown>): Promise<unknown>;
    clock: Clock;
    log(message: string): void;
    /** Service Bus's default is 10. */
    maxDeliveryCount?: number;
    lockSeconds?: number;
    /** How long an abandoned message stays invisible before it is delivered again. */
    retryDelaySeconds?: number;
    pollIntervalMs?: number;
    /** A session whose next message is missing this long (a sender died mid-send) skips ahead. */
    sessionGapTimeoutMs?: number;
    maxConcurrentCalls?: number;
}

/**
 * Receives from a LocalSessionQueue with peek-lock semantics: a message is invisible while it is processed
 * (its lock renewed meanwhile), deleted on success, made visible again after a delay on failure, and moved to
 * the dead-letter queue with the reason after `maxDeliveryCount` failed deliveries. Messages of one session are
 * delivered in sequence order, one at a time.
 */
export class SessionQueuePump {
    private readonly sessions = new Map<string, SessionState>();
    private readonly maxDeliveryCount: number;
    private readonly lockSeconds: number;
    private readonly retryDelaySeconds: number;
    private readonly pollIntervalMs: number;
    private readonly gapTimeoutMs: number;
    private readonly maxConcurrentCalls: number;
    private readonly active = new Set<Promise<void>>();
    private loop: Promise<void> | undefined;
    private stopped = false;
    private wake: (() => void) | undefined;

    constructor(private readonly options: SessionQueuePumpOptions) {
        this.maxDeliveryCount = options.maxDeliveryCount ?? 10;
        this.lockSeconds = options.lockSeconds ?? 60;
        this.retryDelaySeconds = options.retryDelaySeconds ?? 1;
        this.pollIntervalMs = options.pollIntervalMs ?? 500;
        this.gapTimeoutMs = options.sessionGapTimeoutMs ?? 60_000;
        this.maxConcurrentCalls = options.maxConcurrentCalls ?? 16;
    }

    start(): void {
        this.loop = this.run();
    }

    /** Stops receiving and waits for deliveries in progress; held messages become visible when their locks end. */
    async stop(): Promise<void> {
        this.stopped = true;
        this.wake?.();
        await this.loop;
        await Promise.allSettled([...this.active]);
    }

    /**
     * Receives and delivers until the queue has nothing deliverable. Resolves when that work is done
     * (tests use it instead of waiting for the poll interval).
     */
    async drainOnce(): Promise<number> {
        let delivered = 0;
        for (;;) {
            const received = await this.receiveBatch();
            await Promise.allSettled([...this.active]);
            delivered += received;
            if (received === 0) return delivered;
        }
    }

    private async run(): Promise<void> {
        while (!this.stopped) {
            let received = 0;
            try {
                received = await this.receiveBatch();
            } catch (err) {
                this.options.log(
                    `Receiving from ${this.options.queue.queueName} failed: ${ensureErrorType(err).message}`,
                );
            }
            if (received === 0 && !this.stopped) {
                await new Promise<void>((resolve) => {
                    const timer = setTimeout(resolve, this.pollIntervalMs);
                    this.wake = () => {
                        clearTimeout(timer);
                        resolve();
                    };
                });
            }
        }
    }

    /** One receive call; returns how many messages it took in. */
    private async receiveBatch(): Promise<number> {
        if (this.stopped) return 0;
        const free = this.maxConcurrentCalls - this.active.size;
        if (free <= 0) {
            await Promise.race([...this.active]);
            return 1;
        }
        const queue = await this.options.queue.queue();
        const response = await queue.receiveMessages({
            numberOfMessages: Math.min(32, free),
            visibilityTimeout: this.lockSeconds,
            abortSignal: deadline(),
        });
        const now = this.options.clock.now().getTime();
        for (const item of response.receivedMessageItems) {
            const held: Omit<HeldMessage, 'envelope'> = {
                messageId: item.messageId,
                popReceipt: item.popReceipt,
                lockedUntil: now + this.lockSeconds * 1000,
                receivedAt: now,
            };
            let envelope: LocalBusEnvelope;
            try {
                envelope = parseEnvelope(item.messageText);
            } catch (err) {
                await this.deadLetter(
                    { ...held, envelope: unreadableEnvelope(item.messageId, item.messageText, now) },
                    'MessageInvalid',
                    ensureErrorType(err).message,
                );
                continue;
            }
            const message: HeldMessage = { ...held, envelope };
            if (envelope.sessionId === undefined) {
                this.spawn(() => this.deliverOne(message).then(() => undefined));
            } else {
                this.session(envelope.sessionId).pending.set(envelope.sequenceNumber, message);
            }
        }
        for (const [sessionId, state] of this.sessions) {
            if (!state.busy && state.pending.size > 0) {
                state.busy = true;
                this.spawn(() =>
                    this.drainSession(sessionId, state).finally(() => {
                        state.busy = false;
                    }),
                );
            }
        }
        return response.receivedMessageItems.length;
    }

    private spawn(work: () => Promise<void>): void {
        const promise = work().catch((err: unknown) =>
            this.options.log(`Delivery on ${this.options.queue.queueName} failed: ${ensureErrorType(err).message}`),
        );
        this.active.add(promise);
        void promise.finally(() => this.active.delete(promise));
    }

    private session(sessionId: string): SessionState {
        let state = this.sessions.get(sessionId);
        if (!state) {
            state = { pending: new Map(), busy: false };
            this.sessions.set(sessionId, state);
        }
        return state;
    }

    private async drainSession(sessionId: string, state: SessionState): Promise<void> {
        while (!this.stopped) {
            const lastCompleted = await this.options.queue.lastCompleted(sessionId);
            for (const [seq, held] of state.pending) {
                if (seq <= lastCompleted) {
                    // Finished before (a crash between recording and deleting): remove the leftover copy.
                    state.pending.delete(seq);
                    await this.deleteQuietly(held);
                }
            }
            const expected = lastCompleted + 1;
            const next = state.pending.get(expected);
            const now = this.options.clock.now().getTime();
            for (const [seq, held] of state.pending) {
                if (held.lockedUntil <= now) state.pending.delete(seq);
            }
            if (!next) {
                if (state.pending.size === 0) {
                    state.gapSince = undefined;
                    return;
                }
                state.gapSince ??= now;
                if (now - state.gapSince < this.gapTimeoutMs) return;
                const skipTo = Math.min(...state.pending.keys());
                this.options.log(
                    `Session ${sessionId}: message ${expected} never arrived within ${this.gapTimeoutMs} ms; ` +
                        `continuing at ${skipTo}.`,
                );
                await this.options.queue.markCompleted(sessionId, skipTo - 1);
                state.gapSince = undefined;
                continue;
            }
            state.gapSince = undefined;
            state.pending.delete(expected);
            const outcome = await this.deliverOne(next);
            if (outcome === 'retry') return;
        }
    }

    /** Delivers one message and settles it: 'done' (completed or dead-lettered) or 'retry' (abandoned). */
    private async deliverOne(message: HeldMessage): Promise<'done' | 'retry'> {
        if (!(await this.renew(message))) return 'retry';
        const envelope = message.envelope;
        const renewal = setInterval(
            () => {
                void this.renew(message);
            },
            (this.lockSeconds * 1000) / 2,
        );
        let failure: Error | undefined;
        try {
            await this.options.deliver(envelope, bodyOf(envelope), triggerMetadataOf(envelope, message.popReceipt));
        } catch (err) {
            failure = ensureErrorType(err);
        } finally {
            clearInterval(renewal);
        }
        if (!failure) {
            await this.complete(message);
            return 'done';
        }
        const deliveries = envelope.deliveryCount + 1;
        this.options.log(
            `${this.options.queue.queueName} message ${envelope.messageId} failed (delivery ${deliveries} of ` +
                `${this.maxDeliveryCount}): ${failure.message}`,
        );
        if (deliveries >= this.maxDeliveryCount) {
            await this.deadLetter(
                { ...message, envelope: { ...envelope, deliveryCount: deliveries } },
                'MaxDeliveryCountExceeded',
                `${failure.name}: ${failure.message}`,
            );
            return 'done';
        }
        await this.abandon(message, deliveries);
        return 'retry';
    }

    /** Extends the lock; false if the message was lost (its lock expired and someone else holds it). */
    private async renew(message: HeldMessage): Promise<boolean> {
        try {
            const queue = await this.options.queue.queue();
            const r = await queue.updateMessage(message.messageId, message.popReceipt, undefined, this.lockSeconds, {
                abortSignal: deadline(),
            });
            message.popReceipt = r.popReceipt!;
            message.lockedUntil = this.options.clock.now().getTime() + this.lockSeconds * 1000;
            return true;
        } catch (err) {
            if (statusOf(err) === 404 || statusOf(err) === 400) return false;
            throw err;
        }
    }

    private async complete(message: HeldMessage): Promise<void> {
        const { sessionId, sequenceNumber } = message.envelope;
        if (sessionId !== undefined) await this.options.queue.markCompleted(sessionId, sequenceNumber);
        await this.deleteQuietly(message);
    }

    private async abandon(message: HeldMessage, deliveries: number): Promise<void> {
        const queue = await this.options.queue.queue();
        const envelope: LocalBusEnvelope = { ...message.envelope, deliveryCount: deliveries };
        try {
            await queue.updateMessage(
                message.messageId,
                message.popReceipt,
                JSON.stringify(envelope),
                this.retryDelaySeconds,
                { abortSignal: deadline() },
            );
        } catch (err) {
            if (statusOf(err) !== 404) throw err;
        }
    }

    private async deadLetter(message: HeldMessage, reason: string, description: string): Promise<void> {
        const dlq = await this.options.queue.deadLetterQueue();
        const dead: DeadLetteredMessage = {
            ...message.envelope,
            deadLetterReason: reason,
            deadLetterErrorDescription: description.slice(0, 4096),
            deadLetteredAt: this.options.clock.now().toISOString(),
        };
        let text = JSON.stringify(dead);
        if (text.length > MAX_MESSAGE_CHARS) text = JSON.stringify({ ...dead, body: '(too large to keep)' });
        await dlq.sendMessage(text, { messageTimeToLive: -1, abortSignal: deadline() });
        this.options.log(
            `${this.options.queue.queueName} message ${message.envelope.messageId} dead-lettered: ${reason}`,
        );
        await this.complete(message);
    }

    private async deleteQuietly(message: HeldMessage): Promise<void> {
        const queue = await this.options.queue.queue();
        try {
            await queue.deleteMessage(message.messageId, message.popReceipt, { abortSignal: deadline() });
        } catch (err) {
            if (statusOf(err) !== 404) throw err;
        }
    }
}

function parseEnvelope(text: string): LocalBusEnvelope {
    const value = JSON.parse(text) as Partial<LocalBusEnvelope>;
    if (
        typeof value !== 'object' ||
        value === null ||
        value.v !== 1 ||
        typeof value.messageId !== 'string' ||
        typeof value.sequenceNumber !== 'number' ||
        typeof value.deliveryCount !== 'number' ||
        (value.sessionId !== undefined && typeof value.sessionId !== 'string')
    ) {
        throw new Error('The message is not a local bus envelope (v, messageId, sequenceNumber, deliveryCount).');
    }
    return value as LocalBusEnvelope;
}

function unreadableEnvelope(messageId: string, text: string, now: number): LocalBusEnvelope {
    return {
        v: 1,
        messageId,
        sequenceNumber: 0,
        enqueuedTimeUtc: new Date(now).toISOString(),
        deliveryCount: 0,
        body: text.slice(0, 16 * 1024),
    };
}

/** The trigger input, as the Functions worker gives a Service Bus body: JSON text arrives parsed. */
function bodyOf(envelope: LocalBusEnvelope): unknown {
    if (typeof envelope.body !== 'string') return envelope.body;
    try {
        return JSON.parse(envelope.body) as unknown;
    } catch {
        return envelope.body;
    }
}

/** What `context.triggerMetadata` holds for a Service Bus trigger (the fields our functions read). */
function triggerMetadataOf(envelope: LocalBusEnvelope, lockToken: string): Record<string, unknown> {
    return {
        messageId: envelope.messageId,
        sessionId: envelope.sessionId,
        sequenceNumber: envelope.sequenceNumber,
        deliveryCount: envelope.deliveryCount + 1,
        enqueuedTimeUtc: envelope.enqueuedTimeUtc,
        contentType: envelope.contentType,
        correlationId: envelope.correlationId,
        subject: envelope.subject,
        label: envelope.subject,
        applicationProperties: envelope.applicationProperties ?? {},
        userProperties: envelope.applicationProperties ?? {},
        lockToken,
    };
}
