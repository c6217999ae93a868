import type { Sender } from 'rhea';
import type { AmqpMessage } from './amqpWire';

/**
 * What the local broker stores: queues and topic subscriptions (both are entities that hold messages), their
 * dead-letter sub-queues, topics with their subscriptions' filters, and the duplicate-detection history.
 * Names and defaults follow Service Bus: paths are case-insensitive, a subscription is
 * `<topic>/Subscriptions/<name>`, a dead-letter queue `<entity>/$DeadLetterQueue`.
 */

export interface EntityOptions {
    /** Messages are grouped by session id and a receiver locks a whole session (`requiresSession`). */
    sessions?: boolean;
    /** Deliveries before a message is dead-lettered with `MaxDeliveryCountExceeded` (default 10). */
    maxDeliveryCount?: number;
    /** How long a message lock (or a session lock) lasts before it must be renewed (default 60 s). */
    lockDurationMs?: number;
    /** Drop a message whose id was seen within `duplicateDetectionWindowMs` (`requiresDuplicateDetection`). */
    duplicateDetection?: boolean;
    /** Default 30 min, as infra sets it. */
    duplicateDetectionWindowMs?: number;
}

export const DEFAULT_LOCK_MS = 60_000;
export const DEFAULT_MAX_DELIVERY_COUNT = 10;
export const DEFAULT_DUPLICATE_WINDOW_MS = 30 * 60_000;

/** A subscription rule: a predicate, or a correlation filter on application properties as infra declares it. */
export type SubscriptionFilter = ((message: AmqpMessage) => boolean) | { properties: Record<string, unknown> };

export function filterAccepts(filter: SubscriptionFilter, message: AmqpMessage): boolean {
    if (typeof filter === 'function') return filter(message);
    const props = message.application_properties ?? {};
    return Object.entries(filter.properties).every(([name, value]) => props[name] === value);
}

export interface StoredMessage {
    message: AmqpMessage;
    /** Assigned by the broker when the message is accepted, increasing per entity; never taken from the sender. */
    sequenceNumber: number;
    enqueuedAt: Date;
    /** Deliveries so far that did not end in complete. */
    deliveryCount: number;
    sessionId?: string;
}

/** A message out on a receiver link and locked to it until settled, renewed or expired. */
export interface LockedMessage {
    stored: StoredMessage;
    entity: Entity;
    sender: Sender;
    deliveryKey: string;
    /** Hex of the delivery tag, which the SDK turns into the lock token. */
    lockToken: string;
    lockedUntil: Date;
    settle(outcome: unknown): void;
}

/** A session held by one receiver link until the link closes or the session lock expires. */
export interface SessionLock {
    sender: Sender;
    lockedUntil: Date;
}

export class Entity {
    readonly available: StoredMessage[] = [];
    readonly sessions = new Map<string, SessionLock>();
    deadLetter?: Entity;
    private nextSequence = 1;

    constructor(
        readonly path: string,
        readonly options: EntityOptions,
    ) {}

    get lockDurationMs(): number {
        return this.options.lockDurationMs ?? DEFAULT_LOCK_MS;
    }

    get maxDeliveryCount(): number {
        return this.options.maxDeliveryCount ?? DEFAULT_MAX_DELIVERY_COUNT;
    }

    /** Takes in a message and gives it the next sequence number. */
    accept(message: AmqpMessage, deliveryCount = 0): StoredMessage {
        const stored: StoredMessage = {
            message,
            sequenceNumber: this.nextSequence++,
            enqueuedAt: new Date(),
            deliveryCount,
            sessionId: typeof message.group_id === 'string' ? message.group_id : undefined,
        };
        this.available.push(stored);
        return stored;
    }

    /** Puts a message back in sequence order, so one session's messages keep the order they were sent in. */
    putBack(stored: StoredMessage): void {
        const later = this.available.findIndex((m) => m.sequenceNumber > stored.sequenceNumber);
        this.available.splice(later < 0 ? this.available.length : later, 0, stored);
    }

    /** The next message a receiver may take: from its session, or (without sessions) the first one. */
    nextFor(sessionId: string | undefined): StoredMessage | undefined {
        const index = this.available.findIndex((m) =>
            sessionId !== undefined ? m.sessionId === sessionId : !this.options.sessions,
        );
        if (index < 0) return undefined;
        return this.available.splice(index, 1)[0];
    }

    /** The first session with waiting messages that no receiver holds. */
    nextFreeSession(): string | undefined {
        for (const m of this.available) {
            if (m.sessionId !== undefined && !this.sessions.has(m.sessionId)) return m.sessionId;
        }
        return undefined;
    }
}

export interface Topic {
    path: string;
    duplicateDetection: boolean;
    duplicateDetectionWindowMs: number;
    subscriptions: Map<string, { entity: Entity; filter: SubscriptionFilter }>;
}

/** Message ids seen per entity, each remembered for the entity's duplicate-detection window. */
export class DuplicateHistory {
    private readonly seen = new Map<string, Map<string, number>>();

    /** True the first time an id is seen within the window (and then remembers it). */
    firstTime(path: string, messageId: unknown, windowMs: number, now = Date.now()): boolean {
        if (messageId === undefined || messageId === null) return true;
        let ids = this.seen.get(path);
        if (!ids) this.seen.set(path, (ids = new Map()));
        for (const [id, at] of ids) {
            if (now - at < windowMs) break; // insertion order is time order
            ids.delete(id);
        }
        const id = typeof messageId === 'string' ? messageId : JSON.stringify(messageId);
        if (ids.has(id)) return false;
        ids.set(id, now);
        return true;
    }
}
