import {
    isServiceBusError,
    ServiceBusClient,
    ServiceBusReceivedMessage,
    ServiceBusSessionReceiver,
} from '@azure/service-bus';
import { ChannelLog, CommandOutcome, ProviderCommandDelivery } from '../contracts/commandHandler';
import { PROVIDER_COMMANDS_QUEUE } from '../contracts/messages';
import { ensureErrorType } from '../errors';
import { boundedBusCall } from './boundedCall';
import { DEFAULT_BUS_TIMEOUT_MS } from './busClient';

/** Turns a received message into what the command handler reads. The body stays raw bytes. */
export function deliveryFromMessage(message: ServiceBusReceivedMessage): ProviderCommandDelivery {
    return {
        body: message.body,
        messageId: message.messageId === undefined ? undefined : String(message.messageId),
        sessionId: message.sessionId,
        sequenceNumber: message.sequenceNumber?.toString(),
        deliveryCount: message.deliveryCount,
        applicationProperties: message.applicationProperties ?? {},
    };
}

export interface CommandReceiverOptions {
    queue?: string;
    /** Messages taken from a session per receive call. */
    batchSize?: number;
    /** How long to wait for a session with messages, and for more messages in an accepted session. */
    maxWaitTimeInMs?: number;
    /** Pause after a failure (abandon, lost connection) before accepting sessions again. */
    backoffMs?: number;
    /**
     * Pause after a pass that found no session with messages. Azure holds an accept until a session is free,
     * but the emulator or a test peer may answer at once, and the loop must not spin. Default 500 ms.
     */
    idlePauseMs?: number;
    /**
     * Settle a command the handler carried out (complete) or could not carry out (abandon), as the Functions
     * host does with `autoCompleteMessages: true`. False leaves both unsettled, as the host would: the message
     * stays locked until its session is released or its lock expires, then it is delivered again. A refusal is
     * dead-lettered either way (an explicit settlement with its reason). Default true.
     */
    autoCompleteMessages?: boolean;
    /** Sessions worked on at the same time (host.json `maxConcurrentSessions`). Default 1. */
    maxConcurrentSessions?: number;
    /**
     * How long a session lock is kept renewed while one message is handled (host.json
     * `maxAutoLockRenewalDuration`); the window starts again with each message. 0 turns renewal off. Default 5 min.
     */
    maxAutoLockRenewalDurationInMs?: number;
    /**
     * Longest wait for one receive, settlement or close of an accepted session's receiver. The SDK's own
     * `retryOptions.timeoutInMs` does not bound a settlement whose link drops while it is in flight: without this
     * bound the pass waited for ever and no other session was worked on. Default `DEFAULT_BUS_TIMEOUT_MS`.
     */
    operationTimeoutMs?: number;
    log?: ChannelLog;
}

export interface SessionPass {
    sessionId?: string;
    completed: number;
    deadLettered: number;
    abandoned: number;
}

const quietLog: ChannelLog = { info: () => undefined, warn: () => undefined };

/** No session had messages: the broker answers an accept with a timeout. */
function isNoSessionAvailable(err: unknown): boolean {
    return isServiceBusError(err) && (err.code === 'ServiceTimeout' || err.code === 'SessionCannotBeLocked');
}

/**
 * Reads `provider-commands` with session receivers in peek-lock mode, the way the local host does when a bus
 * connection is configured (the Functions host does the same through the trigger). Each message goes through
 * `handle` (the shared command handler) and is settled by its outcome: complete, dead-letter with reason and
 * one-line description, or abandon. Every call is bounded by the client's `retryOptions.timeoutInMs`
 * (see `busClientOptions`). After an abandon the session is released at once, so that VM's later
 * messages wait behind the one that failed: order within a session is kept.
 *
 * The session lock is renewed here, not by the SDK: the SDK renews for `maxAutoLockRenewalDuration` from the
 * accept (a session that keeps receiving messages outlives that and loses its lock mid-message), ten seconds
 * before expiry (a stalled event loop misses that), and stops for good after one failed renewal. This receiver
 * renews when half the lock is left, retries a failed renewal while the lock lasts, and restarts the renewal
 * window with each message, as the Functions trigger does per invocation. A lock lost anyway fails the pass;
 * the loop accepts the session again and its unsettled messages come back (the handler's replay record turns a
 * repeat of a command already carried out into a plain completion).
 */
export class ServiceBusCommandReceiver {
    private readonly queue: string;
    private readonly batchSize: number;
    private readonly maxWaitTimeInMs: number;
    private readonly backoffMs: number;
    private readonly idlePauseMs: number;
    private readonly log: ChannelLog;
    private readonly autoComplete: boolean;
    private readonly sessionWorkers: number;
    private readonly lockRenewalMs: number;
    private readonly operationTimeoutMs: number;
    private running?: Promise<void>;
    private stopping = new AbortController();

    constructor(
        private readonly client: ServiceBusClient,
        private readonly handle: (delivery: ProviderCommandDelivery) => Promise<CommandOutcome>,
        options: CommandReceiverOptions = {},
    ) {
        this.queue = options.queue ?? PROVIDER_COMMANDS_QUEUE;
        this.batchSize = options.batchSize ?? 16;
        this.maxWaitTimeInMs = options.maxWaitTimeInMs ?? 5_000;
        this.backoffMs = options.backoffMs ?? 2_000;
        this.idlePauseMs = options.idlePauseMs ?? 500;
        this.log = options.log ?? quietLog;
        this.autoComplete = options.autoCompleteMessages ?? true;
        this.sessionWorkers = Math.max(1, options.maxConcurrentSessions ?? 1);
        this.lockRenewalMs = options.maxAutoLockRenewalDurationInMs ?? 5 * 60_000;
        this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_BUS_TIMEOUT_MS;
    }

    /** Starts the receive loop in the background; `stop` ends it. */
    start(): void {
        if (this.running) return;
        this.stopping = new AbortController();
        this.running = Promise.all(Array.from({ length: this.sessionWorkers }, () => this.loop())).then(
            () => undefined,
        );
    }

    async stop(): Promise<void> {
        this.stopping.abort();
        await this.running;
        this.running = undefined;
    }

    private async loop(): Promise<void> {
        while (!this.stopping.signal.aborted) {
            let pass: SessionPass | undefined;
            try {
                pass = await this.processNextSession();
            } catch (err) {
                this.log.warn('Provider command receiver failed; retrying', { error: ensureErrorType(err).message });
                pass = undefined;
            }
            if (pass === undefined || pass.abandoned > 0) await this.pause(this.backoffMs);
            else if (pass.sessionId === undefined) await this.pause(this.idlePauseMs);
        }
    }

    private async pause(ms: number): Promise<void> {
        if (this.stopping.signal.aborted) return;
        // The listener goes with the pause: the loop pauses after every idle pass, and one left behind per pause
        // grew without end (a listener and its closure per half second per session worker).
        const signal = this.stopping.signal;
        await new Promise<void>((resolve) => {
            const done = () => {
                clearTimeout(timer);
                signal.removeEventListener('abort', done);
                resolve();
            };
            const timer = setTimeout(done, ms);
            signal.addEventListener('abort', done, { once: true });
        });
    }

    /**
     * Accepts the next session that has messages and works through it until it is empty or a message is
     * abandoned. Returns what happened, or a pass without a session id when no session had messages.
     */
    async processNextSession(): Promise<SessionPass> {
        let receiver: ServiceBusSessionReceiver;
        try {
            receiver = await this.client.acceptNextSession(this.queue, {
                receiveMode: 'peekLock',
                skipParsingBodyAsJson: true,
                // Renewed by keepLocked below, not by the SDK.
                maxAutoLockRenewalDurationInMs: 0,
                // No abortSignal here: aborting an accept while the client re-establishes a dropped connection
                // left the client unable to accept again (seen with 7.9.5). The client's retryOptions.timeoutInMs
                // bounds the call instead.
            });
        } catch (err) {
            if (isNoSessionAvailable(err) || this.stopping.signal.aborted) {
                return { completed: 0, deadLettered: 0, abandoned: 0 };
            }
            throw err;
        }
        const pass: SessionPass = { sessionId: receiver.sessionId, completed: 0, deadLettered: 0, abandoned: 0 };
        const lock = this.keepLocked(receiver);
        try {
            while (!this.stopping.signal.aborted) {
                const messages = await this.bounded(
                    receiver,
                    'receive',
                    receiver.receiveMessages(this.batchSize, { maxWaitTimeInMs: this.maxWaitTimeInMs }),
                    this.maxWaitTimeInMs,
                );
                if (messages.length === 0) break;
                for (const message of messages) {
                    lock.restartWindow();
                    const outcome = await this.outcomeOf(message);
                    await this.settle(receiver, message, outcome);
                    if (outcome.action === 'complete') pass.completed++;
                    else if (outcome.action === 'deadLetter') pass.deadLettered++;
                    else pass.abandoned++;
                    if (outcome.action === 'abandon') {
                        // The rest of this batch is still locked to us; give it back so it is not counted as a
                        // failed delivery later, and keep the order: nothing after the failed message goes first.
                        // Without auto-completion nothing is settled: closing the session releases them.
                        if (this.autoComplete) {
                            for (const rest of messages.slice(messages.indexOf(message) + 1)) {
                                await this.bounded(receiver, 'abandon', receiver.abandonMessage(rest));
                            }
                        }
                        return pass;
                    }
                }
            }
            return pass;
        } finally {
            lock.stop();
            await this.bounded(receiver, 'close', receiver.close(), 0, false).catch(() => undefined);
        }
    }

    /**
     * One call on an accepted session's receiver, bounded by `operationTimeoutMs` beyond `extraMs` (a receive's
     * own wait) and, unless `whileOpen` is false, by the receiver staying open (boundedBusCall).
     */
    private bounded<T>(
        receiver: ServiceBusSessionReceiver,
        what: string,
        call: Promise<T>,
        extraMs = 0,
        whileOpen = true,
    ): Promise<T> {
        return boundedBusCall(call, {
            what,
            timeoutMs: this.operationTimeoutMs + extraMs,
            closed: whileOpen ? () => receiver.isClosed : undefined,
            details: { sessionId: receiver.sessionId, queue: this.queue },
        });
    }

    /**
     * Keeps the session lock of an accepted session: renews it when half of what is left has passed, and after a
     * failed renewal tries again every second while the lock still holds. Renewal stops `lockRenewalMs` after the
     * last `restartWindow` (the start of the message being handled), or at `stop`.
     */
    private keepLocked(receiver: ServiceBusSessionReceiver): { restartWindow(): void; stop(): void } {
        let windowEnds = Date.now() + this.lockRenewalMs;
        let timer: NodeJS.Timeout | undefined;
        let stopped = this.lockRenewalMs <= 0;
        const lockLeftMs = () => (receiver.sessionLockedUntilUtc?.getTime() ?? 0) - Date.now();
        const later = (ms: number) => {
            if (stopped) return;
            timer = setTimeout(() => void renew(), Math.max(0, ms));
            timer.unref?.();
        };
        const renew = async () => {
            if (stopped) return;
            if (Date.now() >= windowEnds) {
                // Nothing renews past the window; check again in case the next message restarts it.
                later(Math.max(1_000, lockLeftMs() / 2));
                return;
            }
            try {
                await receiver.renewSessionLock();
                later(lockLeftMs() / 2);
            } catch (err) {
                if (stopped) return;
                const left = lockLeftMs();
                this.log.warn('Session lock renewal failed', {
                    sessionId: receiver.sessionId,
                    error: ensureErrorType(err).message,
                    lockLeftMs: Math.max(0, left),
                });
                const lost = isServiceBusError(err) && err.code === 'SessionLockLost';
                if (!lost && left > 0) later(Math.min(1_000, left / 2));
            }
        };
        later(lockLeftMs() / 2);
        return {
            restartWindow: () => {
                windowEnds = Date.now() + this.lockRenewalMs;
            },
            stop: () => {
                stopped = true;
                clearTimeout(timer);
            },
        };
    }

    private async outcomeOf(message: ServiceBusReceivedMessage): Promise<CommandOutcome> {
        try {
            return await this.handle(deliveryFromMessage(message));
        } catch (err) {
            return { action: 'abandon', reason: 'TRANSIENT', description: ensureErrorType(err).message };
        }
    }

    private async settle(
        receiver: ServiceBusSessionReceiver,
        message: ServiceBusReceivedMessage,
        outcome: CommandOutcome,
    ): Promise<void> {
        if (!this.autoComplete && outcome.action !== 'deadLetter') {
            this.log.info('Provider command left unsettled (autoCompleteMessages is off)', {
                messageId: message.messageId,
                action: outcome.action,
            });
            return;
        }
        switch (outcome.action) {
            case 'complete':
                await this.bounded(receiver, 'complete', receiver.completeMessage(message));
                return;
            case 'deadLetter':
                this.log.warn('Provider command dead-lettered', {
                    messageId: message.messageId,
                    sessionId: message.sessionId,
                    reason: outcome.reason,
                    description: outcome.description,
                });
                await this.bounded(
                    receiver,
                    'dead-letter',
                    receiver.deadLetterMessage(message, {
                        deadLetterReason: outcome.reason,
                        deadLetterErrorDescription: outcome.description,
                    }),
                );
                return;
            case 'abandon':
                this.log.info('Provider command abandoned for redelivery', {
                    messageId: message.messageId,
                    deliveryCount: message.deliveryCount,
                    reason: outcome.reason,
                    description: outcome.description,
                });
                await this.bounded(receiver, 'abandon', receiver.abandonMessage(message));
                return;
        }
    }
}
