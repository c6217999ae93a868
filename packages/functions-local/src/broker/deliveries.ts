import { randomUUID } from 'node:crypto';
import { message as amqpMessage, types as amqpTypes } from 'rhea';
import type { Connection, Delivery, EventContext, Sender } from 'rhea';
import { AmqpMessage, CONDITIONS, DEAD_LETTER_CONDITION, lockTokenOfTag, lockTokenTag, OUTCOMES } from './amqpWire';
import { Entity, LockedMessage, StoredMessage } from './entities';
import { ManagementTarget } from './management';

type Settlement = 'complete' | 'abandon' | 'deadLetter';

/**
 * Settles a delivery the receiver has already answered, and lets rhea forget it. The SDKs receive in peek-lock
 * with receiver settle mode "second": the receiver sends its outcome unsettled, the sender (this broker) settles,
 * and the receiver never sends another disposition. rhea frees an outgoing delivery only once both ends have
 * settled it, and holds at most 2,048 unfreed deliveries per AMQP session; past that every link of the session
 * stops being sendable. A long-lived receiver (a provider's event subscription) stopped getting messages after
 * its 2,048th, for good.
 */
function settleLast(delivery: Delivery, state: unknown): void {
    delivery.update(true, state);
    (delivery as Delivery & { remote_settled: boolean }).remote_settled = true;
}

/** A receiver link the broker sends to. */
export interface ReceiverLink {
    sender: Sender;
    entity: Entity;
    /** Set for a session receiver: it only gets that session's messages. */
    sessionId?: string;
}

/**
 * The peek-lock half of the broker: hands messages to receiver links as their credit allows, keeps each one
 * locked until it is settled (complete, abandon, dead-letter, over the link or by lock token), renewed or
 * expired, and puts it back with one more delivery counted (or dead-letters it past maxDeliveryCount) when its
 * lock is lost.
 */
export class Deliveries implements ManagementTarget {
    readonly receivers: ReceiverLink[] = [];
    readonly locked = new Map<string, LockedMessage>();

    constructor(private readonly entityAt: (path: string) => Entity | undefined) {}

    pumpAll(): void {
        for (const link of [...this.receivers]) this.pump(link.sender);
    }

    pump(sender: Sender | undefined): void {
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
            const outgoing = this.asDelivered(entity, stored, lockedUntil);
            const delivery = sender.send(outgoing, tag);
            const deliveryKey = this.deliveryKey(sender, delivery);
            this.locked.set(deliveryKey, {
                stored,
                entity,
                sender,
                deliveryKey,
                lockToken: lockTokenOfTag(tag),
                lockedUntil,
                settle: (state) => settleLast(delivery, state),
            });
        }
    }

    /** A stored message with what the broker adds when it hands it out: sequence number, enqueued time, lock. */
    private asDelivered(entity: Entity, stored: StoredMessage, lockedUntil: Date | undefined): AmqpMessage {
        return {
            ...stored.message,
            delivery_count: stored.deliveryCount,
            message_annotations: {
                ...(stored.message.message_annotations ?? {}),
                'x-opt-sequence-number': amqpTypes.wrap_long(stored.sequenceNumber),
                'x-opt-enqueued-time': stored.enqueuedAt,
                ...(lockedUntil ? { 'x-opt-locked-until': lockedUntil } : {}),
                ...(entity.deadLetter ? {} : { 'x-opt-deadletter-source': entity.path.split('/$')[0] }),
            },
        };
    }

    peek(entityPath: string, fromSequence: number, count: number, sessionId?: string): Buffer[] {
        const entity = this.entityAt(entityPath);
        if (!entity) return [];
        const locked = [...this.locked.values()].filter((l) => l.entity === entity).map((l) => l.stored);
        return [...entity.available, ...locked]
            .filter((m) => m.sequenceNumber >= fromSequence && (sessionId === undefined || m.sessionId === sessionId))
            .sort((a, b) => a.sequenceNumber - b.sequenceNumber)
            .slice(0, Math.max(0, count))
            .map((m) => amqpMessage.encode(this.asDelivered(entity, m, undefined)));
    }

    private deliveryKey(sender: Sender, delivery: Delivery): string {
        return `${sender.connection.options.id ?? ''}/${sender.name}/${delivery.id}`;
    }

    /** Whether a settlement arriving is for a message this broker has locked to a receiver. */
    settles(context: EventContext): boolean {
        return (
            context.sender !== undefined &&
            context.delivery !== undefined &&
            this.locked.has(this.deliveryKey(context.sender, context.delivery))
        );
    }

    onDisposition(context: EventContext, outcome: Settlement): void {
        const delivery = context.delivery!;
        const locked = this.locked.get(this.deliveryKey(context.sender!, delivery));
        if (!locked) {
            // Settled once already, or its lock expired and the message went back to the queue.
            settleLast(
                delivery,
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
    expireLocks(now = Date.now()): void {
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
        const entity = this.entityAt(entityPath);
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
        const entity = this.entityAt(entityPath);
        return [...this.locked.values()].find((l) => l.entity === entity && l.lockToken === lockToken);
    }

    /** A link went away: its locks are lost and its session is free again, as on the real broker. */
    releaseLink(sender: Sender | undefined): void {
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

    releaseConnection(connection: Connection | undefined): void {
        if (!connection) return;
        for (const link of [...this.receivers]) {
            if (link.sender.connection === connection) this.releaseLink(link.sender);
        }
    }
}
