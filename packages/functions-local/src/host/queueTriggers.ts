import { QueueClient, DequeuedMessageItem } from '@azure/storage-queue';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureErrorType, LocalPlatformError } from '../errors';
import { deadline } from '../storage';
import { resolveSettingReferences } from './appSettings';
import { RegisteredFunction } from './registry';

/**
 * host.json `extensions.queues`, as the Functions Storage queue extension 5.x reads it (QueuesOptions):
 * retry delay after a failure, tries before poison, batch and polling. Defaults are the extension's.
 */
export interface QueueTriggerSettings {
    /** Delay before a failed message is visible again (`visibilityTimeout`, default 0). */
    visibilityTimeoutSeconds: number;
    /** Tries before the message moves to `<queue>-poison` (`maxDequeueCount`, default 5). */
    maxDequeueCount: number;
    /** Messages fetched at once (`batchSize`, default 16, at most 32). */
    batchSize: number;
    /** A new batch is fetched when this few are still running (`newBatchThreshold`, default batchSize / 2). */
    newBatchThreshold: number;
    /** Longest wait between polls of an empty queue (`maxPollingInterval`, default 1 min). */
    maxPollingIntervalMs: number;
    /** `base64` (default) or `none`. */
    messageEncoding: 'base64' | 'none';
}

function timeSpanSeconds(value: unknown, name: string): number | undefined {
    if (value === undefined) return undefined;
    const m = typeof value === 'string' ? /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value) : null;
    if (!m)
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `host.json extensions.queues.${name} ${JSON.stringify(value)} is not hh:mm:ss.`,
        );
    return (
        Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]) + Number(`0.${m[5] ?? 0}`)
    );
}

/** Reads host.json's `extensions.queues` section (absent: the extension's defaults). */
export function queueTriggerSettings(appRoot: string): QueueTriggerSettings {
    const path = join(appRoot, 'host.json');
    let section: Record<string, unknown> = {};
    if (existsSync(path)) {
        const hostJson = JSON.parse(readFileSync(path, 'utf8')) as {
            extensions?: { queues?: Record<string, unknown> };
        };
        section = hostJson.extensions?.queues ?? {};
    }
    const num = (name: string, fallback: number): number => {
        const v = section[name];
        if (v === undefined) return fallback;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
            throw new LocalPlatformError(
                'CONFIG_MISSING',
                `host.json extensions.queues.${name} must be a whole number.`,
            );
        }
        return v;
    };
    const batchSize = Math.min(32, Math.max(1, num('batchSize', 16)));
    const encoding = section.messageEncoding ?? 'base64';
    if (encoding !== 'base64' && encoding !== 'none') {
        throw new LocalPlatformError(
            'CONFIG_MISSING',
            `host.json extensions.queues.messageEncoding must be base64 or none.`,
        );
    }
    return {
        visibilityTimeoutSeconds: timeSpanSeconds(section.visibilityTimeout, 'visibilityTimeout') ?? 0,
        maxDequeueCount: Math.max(1, num('maxDequeueCount', 5)),
        batchSize,
        newBatchThreshold: num('newBatchThreshold', Math.floor(batchSize / 2)),
        maxPollingIntervalMs: (timeSpanSeconds(section.maxPollingInterval, 'maxPollingInterval') ?? 60) * 1000,
        messageEncoding: encoding,
    };
}

export interface QueueTriggerPumpOptions {
    fn: RegisteredFunction;
    queue: QueueClient;
    poisonQueue: QueueClient;
    settings: QueueTriggerSettings;
    /**
     * How long a fetched message stays invisible while its invocation runs, renewed at half of it. The extension
     * fixes this at 10 minutes; the local host uses 30 s by default so a killed host's message (a merge cut off
     * by a kill) is delivered again within a minute.
     */
    leaseSeconds?: number;
    /** Shortest wait between polls of an empty queue (the extension's minimum is 100 ms). */
    minPollingIntervalMs?: number;
    invoke(fn: RegisteredFunction, input: unknown, triggerMetadata: Record<string, unknown>): Promise<unknown>;
    log(message: string): void;
}

/** What one drain did, for tests. */
export interface QueueDrainReport {
    received: number;
    succeeded: number;
    failed: number;
    poisoned: number;
}

/**
 * Runs a storage-queue-triggered function as the Functions queue extension does: fetch a batch invisible for
 * the lease (renewed while running), decode (base64 unless `messageEncoding: none`; JSON becomes an object),
 * invoke; success deletes the message; failure makes it visible again after `visibilityTimeout`, and once its
 * dequeue count reaches `maxDequeueCount` it moves to `<queue>-poison` instead. A message seen more often than
 * that (its host died each time) goes to poison without another try.
 */
export class QueueTriggerPump {
    private readonly leaseSeconds: number;
    private stopped = false;
    private timer: NodeJS.Timeout | undefined;
    private loop: Promise<void> | undefined;
    private readonly running = new Set<Promise<void>>();
    private wake: (() => void) | undefined;
    private freed = false;

    constructor(private readonly options: QueueTriggerPumpOptions) {
        this.leaseSeconds = Math.max(2, options.leaseSeconds ?? 30);
    }

    get queueName(): string {
        return this.options.queue.name;
    }

    start(): void {
        this.loop = this.run();
    }

    /** Stops fetching; invocations still running are drained (bounded) by the host, like every other trigger's. */
    async stop(): Promise<void> {
        this.stopped = true;
        clearTimeout(this.timer);
        this.wake?.();
        await this.loop;
    }

    private async run(): Promise<void> {
        const min = this.options.minPollingIntervalMs ?? 100;
        let delay = min;
        while (!this.stopped) {
            let got = 0;
            try {
                await this.options.queue.createIfNotExists({ abortSignal: deadline() });
                if (this.running.size <= this.options.settings.newBatchThreshold) got = await this.fetchAndStart();
            } catch (err) {
                this.options.log(
                    `${this.options.fn.name}: polling ${this.queueName} failed: ${ensureErrorType(err).message}`,
                );
            }
            delay = got > 0 || this.freed ? min : Math.min(this.options.settings.maxPollingIntervalMs, delay * 2);
            this.freed = false;
            await new Promise<void>((resolve) => {
                this.wake = resolve;
                this.timer = setTimeout(resolve, got > 0 ? 0 : delay);
            });
        }
    }

    /** Fetches and runs what the queue holds now, until it is empty; resolves when all of it has finished. */
    async drainOnce(): Promise<QueueDrainReport> {
        const report: QueueDrainReport = { received: 0, succeeded: 0, failed: 0, poisoned: 0 };
        await this.options.queue.createIfNotExists({ abortSignal: deadline() });
        for (;;) {
            const batch = await this.receive();
            if (batch.length === 0) break;
            report.received += batch.length;
            await Promise.all(batch.map((m) => this.process(m, report)));
        }
        // Messages the polling loop took are part of "what the queue held".
        await Promise.allSettled([...this.running]);
        return report;
    }

    private async receive(): Promise<DequeuedMessageItem[]> {
        const response = await this.options.queue.receiveMessages({
            numberOfMessages: this.options.settings.batchSize,
            visibilityTimeout: this.leaseSeconds,
            abortSignal: deadline(),
        });
        return response.receivedMessageItems;
    }

    private async fetchAndStart(): Promise<number> {
        const batch = await this.receive();
        for (const message of batch) {
            const work = this.process(message)
                // Settling can fail once the lease is lost (a renewal late on a loaded machine: the pop receipt no
                // longer matches); the message then comes back, as on the Functions host. Never crash the host.
                .catch((err: unknown) =>
                    this.options.log(
                        `${this.options.fn.name}: message ${message.messageId} not settled (it will be delivered again): ${ensureErrorType(err).message}`,
                    ),
                )
                .finally(() => {
                    this.running.delete(work);
                    // A slot is free: poll again now (the extension fetches as soon as it is below the threshold).
                    this.freed = true;
                    this.wake?.();
                });
            this.running.add(work);
        }
        return batch.length;
    }

    private decode(text: string): unknown {
        let body = text;
        if (this.options.settings.messageEncoding === 'base64') {
            if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
                throw new LocalPlatformError(
                    'VALIDATION_FAILED',
                    'The message is not valid base64 (host.json messageEncoding is base64).',
                );
            }
            body = Buffer.from(text, 'base64').toString('utf8');
        }
        try {
            const parsed = JSON.parse(body) as unknown;
            return typeof parsed === 'object' && parsed !== null ? parsed : body;
        } catch {
            return body;
        }
    }

    private async process(message: DequeuedMessageItem, report?: QueueDrainReport): Promise<void> {
        const { fn, queue, settings } = this.options;
        let popReceipt = message.popReceipt;
        if (message.dequeueCount > settings.maxDequeueCount) {
            await this.poison(message, popReceipt, `dequeued ${message.dequeueCount} times without completing`);
            if (report) report.poisoned++;
            return;
        }
        // Keep the message invisible while the invocation runs, as the extension does.
        const renew = setInterval(
            () => {
                queue
                    .updateMessage(message.messageId, popReceipt, undefined, this.leaseSeconds, {
                        abortSignal: deadline(),
                    })
                    .then((r) => {
                        if (r.popReceipt) popReceipt = r.popReceipt;
                    })
                    .catch((err: unknown) =>
                        this.options.log(`${fn.name}: renewing ${message.messageId}: ${ensureErrorType(err).message}`),
                    );
            },
            (this.leaseSeconds * 1000) / 2,
        );
        let failure: string | undefined;
        try {
            const input = this.decode(message.messageText);
            await this.options.invoke(fn, input, {
                id: message.messageId,
                dequeueCount: message.dequeueCount,
                insertionTime: message.insertedOn.toISOString(),
                expirationTime: message.expiresOn.toISOString(),
                nextVisibleTime: message.nextVisibleOn.toISOString(),
                popReceipt: message.popReceipt,
                queueTrigger: typeof input === 'string' ? input : JSON.stringify(input),
            });
        } catch (err) {
            const e = ensureErrorType(err);
            failure = `${e.name}: ${e.message}`;
        } finally {
            clearInterval(renew);
        }
        if (failure === undefined) {
            await queue.deleteMessage(message.messageId, popReceipt, { abortSignal: deadline() });
            if (report) report.succeeded++;
            return;
        }
        this.options.log(
            `${fn.name} failed on message ${message.messageId} of ${queue.name} ` +
                `(try ${message.dequeueCount} of ${settings.maxDequeueCount}): ${failure}`,
        );
        if (message.dequeueCount >= settings.maxDequeueCount) {
            await this.poison(message, popReceipt, failure);
            if (report) report.poisoned++;
        } else {
            await queue.updateMessage(message.messageId, popReceipt, undefined, settings.visibilityTimeoutSeconds, {
                abortSignal: deadline(),
            });
            if (report) report.failed++;
        }
    }

    /** Copies the message as it is to `<queue>-poison`, then deletes it (the extension's order). */
    private async poison(message: DequeuedMessageItem, popReceipt: string, why: string): Promise<void> {
        const { poisonQueue, queue, fn } = this.options;
        await poisonQueue.createIfNotExists({ abortSignal: deadline() });
        await poisonQueue.sendMessage(message.messageText, { messageTimeToLive: -1, abortSignal: deadline() });
        await queue.deleteMessage(message.messageId, popReceipt, { abortSignal: deadline() });
        this.options.log(`${fn.name}: message ${message.messageId} moved to ${poisonQueue.name}: ${why}`);
    }
}

/** The queue a storageQueue trigger reads, with `%SETTING%` references resolved. */
export function triggerQueueName(fn: RegisteredFunction, settings: Record<string, string | undefined>): string {
    return resolveSettingReferences(String(fn.trigger.queueName), settings);
}
