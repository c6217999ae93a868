import { createHash } from 'node:crypto';
import { TableClient, TableEntity } from '@azure/data-tables';
import { BlobItem } from '@azure/storage-blob';
import { QueueClient } from '@azure/storage-queue';
import { ensureErrorType } from '../errors';
import type { Clock } from '../durable/clock';
import { encodeKey, tableFor, StorageConnection, deadline } from '../storage';
import { resolveSettingReferences } from './appSettings';
import { HostStorage, statusOf } from './hostStorage';
import { parseBlobPath, type BlobPathPattern } from './blobPath';
import { RegisteredFunction } from './registry';

export { parseBlobPath, type BlobPathPattern };

/** The table of receipts: one row per function and blob, saying which version of the blob fired. */
export const BLOB_RECEIPTS_TABLE = 'hostBlobReceipts';
/** Where blobs whose trigger failed every try are reported, as the Functions host does. */
export const BLOB_POISON_QUEUE = 'webjobs-blobtrigger-poison';

/** Blobs up to this size are passed to the handler as content, as the Functions host does. */
export const DEFAULT_CONTENT_LIMIT_BYTES = 32 * 1024 * 1024;

/** One blob that fired a trigger, as the handler sees it. */
export interface BlobInvocation {
    fn: RegisteredFunction;
    /** The trigger input: the content (Buffer or string), or `{ blobClient, containerClient }` for `sdkBinding`. */
    input: unknown;
    triggerMetadata: Record<string, unknown>;
}

export interface BlobTriggerScannerOptions {
    functions: RegisteredFunction[];
    host: HostStorage;
    /** App settings, for `%NAME%` references in trigger paths. */
    settings: Record<string, string | undefined>;
    /** The storage connection a binding's `connection` setting names. */
    connectionFor(setting: string): StorageConnection;
    invoke(call: BlobInvocation): Promise<unknown>;
    clock: Clock;
    log(message: string): void;
    /** Tries per blob before it goes to poison (the Functions host's default is 5). */
    maxTries?: number;
    /** How long a claimed blob stays reserved for the host running it (≥ the function timeout). */
    leaseMs?: number;
    /** Blobs larger than this are not read into memory: the handler gets `undefined` and the metadata. */
    contentLimitBytes?: number;
    /** Blob triggers run at most this many at once per scan. */
    concurrency?: number;
    /** Event Grid subscriptions the scan emulates: BlobCreated events of a container delivered to a Storage queue. */
    eventSubscriptions?: LocalEventSubscription[];
}

/**
 * What infra subscribes in Azure (a system topic on the storage account, BlobCreated of one container, a Storage
 * queue destination), emulated by the scan: each new blob version enqueues the event message Event Grid writes.
 */
export interface LocalEventSubscription {
    name: string;
    /** The app setting naming the storage account whose container is watched. */
    connection: string;
    container: string;
    /** The destination queue. */
    queue(): Promise<QueueClient>;
    /** The message for a created blob (base64 JSON of the Event Grid event). */
    message(blobName: string, blob: BlobItem, url: string): string;
}

/** What one scan did, for tests and the console. */
export interface BlobScanReport {
    /** Events enqueued for the Event Grid subscriptions the scan emulates. */
    published: number;
    fired: number;
    succeeded: number;
    failed: number;
    poisoned: number;
}

type ReceiptStatus = 'running' | 'done' | 'failed' | 'poison';

interface Receipt {
    partitionKey: string;
    rowKey: string;
    etag?: string;
    status: ReceiptStatus;
    /** What identifies the version of the blob that fired (see versionOf). */
    version: string;
    blobETag: string;
    attempts: number;
    leaseUntil: string;
    lastError?: string;
    blobPath: string;
}

interface Candidate {
    fn: RegisteredFunction;
    pattern: BlobPathPattern;
    connection: StorageConnection;
    item: BlobItem;
    bindingData: Record<string, string>;
}

function receiptRowKey(blobPath: string): string {
    const key = encodeKey(blobPath);
    // Table keys are limited to 1 KiB; long blob names fall back to a digest (the path is kept in the row).
    return key.length <= 400 ? key : 'sha256~' + createHash('sha256').update(blobPath).digest('hex');
}

/**
 * Which changes fire. The polling trigger (`LogsAndContainerScan`) fires on every new ETag. An Event Grid
 * trigger fires on BlobCreated only: Put Blob, Put Block List, Copy Blob — a new creation time, or new
 * content with the same creation second — and never on metadata changes or Put Page.
 */
function versionOf(fn: { trigger: Record<string, unknown> }, item: BlobItem): string {
    const p = item.properties;
    if (fn.trigger.source !== 'EventGrid') return p.etag ?? '';
    const created = p.createdOn?.toISOString() ?? '';
    if (p.blobType !== 'BlockBlob') return created;
    const md5 = p.contentMD5 ? Buffer.from(p.contentMD5).toString('base64') : '';
    return `${created}|${md5}`;
}

/**
 * Turns new blobs into blob-trigger invocations by scanning the containers the triggers name. A receipt per
 * function and blob (table `hostBlobReceipts` in AzureWebJobsStorage) makes each version fire once, across
 * restarts and between hosts sharing the storage; failures are retried on later scans and, after
 * `maxTries`, reported on the `webjobs-blobtrigger-poison` queue with the reason.
 */
export class BlobTriggerScanner {
    private readonly maxTries: number;
    private readonly leaseMs: number;
    private readonly concurrency: number;
    private readonly running = new Set<string>();
    private readonly patterns = new Map<string, BlobPathPattern>();
    private timer: NodeJS.Timeout | undefined;
    private scanning: Promise<BlobScanReport> | undefined;
    private stopped = false;

    constructor(private readonly options: BlobTriggerScannerOptions) {
        this.maxTries = options.maxTries ?? 5;
        this.leaseMs = options.leaseMs ?? 30 * 60_000;
        this.concurrency = options.concurrency ?? 4;
        for (const fn of options.functions) {
            this.patterns.set(
                fn.name,
                parseBlobPath(resolveSettingReferences(String(fn.trigger.path), options.settings)),
            );
        }
    }

    /** Scans every `intervalMs` until stopped. */
    start(intervalMs: number): void {
        const tick = (): void => {
            if (this.stopped) return;
            this.scanNow()
                .catch((err: unknown) => this.options.log(`Blob scan failed: ${ensureErrorType(err).message}`))
                .finally(() => {
                    if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
                });
        };
        this.timer = setTimeout(tick, 0);
    }

    /** Stops scanning and waits for a scan in progress (its invocations are drained by the host). */
    async stop(): Promise<void> {
        this.stopped = true;
        clearTimeout(this.timer);
        await this.scanning?.catch(() => undefined);
    }

    /** Scans once and resolves when every invocation it started has finished. Concurrent calls share a scan. */
    scanNow(): Promise<BlobScanReport> {
        if (!this.scanning) {
            this.scanning = this.scan().finally(() => {
                this.scanning = undefined;
            });
        }
        return this.scanning;
    }

    private async scan(): Promise<BlobScanReport> {
        const report: BlobScanReport = { published: 0, fired: 0, succeeded: 0, failed: 0, poisoned: 0 };
        const receipts = await tableFor(this.options.host.connection, BLOB_RECEIPTS_TABLE);
        for (const subscription of this.options.eventSubscriptions ?? []) {
            if (this.stopped) break;
            await this.publishEvents(receipts, subscription, report);
        }
        const work: (() => Promise<void>)[] = [];
        for (const fn of this.options.functions) {
            if (this.stopped) break;
            const pattern = this.patterns.get(fn.name)!;
            const connection = this.options.connectionFor(
                typeof fn.trigger.connection === 'string' ? fn.trigger.connection : 'AzureWebJobsStorage',
            );
            const known = await this.receiptsOf(receipts, fn);
            const container = connection.blob.getContainerClient(pattern.container);
            const listing = container.listBlobsFlat({
                prefix: pattern.prefix || undefined,
                includeMetadata: true,
                abortSignal: deadline(),
            });
            try {
                for await (const item of listing) {
                    const bindingData = pattern.match(item.name);
                    if (!bindingData) continue;
                    const candidate: Candidate = { fn, pattern, connection, item, bindingData };
                    const blobPath = `${pattern.container}/${item.name}`;
                    const receipt = known.get(receiptRowKey(blobPath));
                    if (this.due(fn, item, receipt)) work.push(() => this.fire(receipts, candidate, receipt, report));
                }
            } catch (err) {
                // A container that does not exist yet has nothing to fire.
                if (statusOf(err) !== 404) throw err;
            }
        }
        await runLimited(work, this.concurrency);
        return report;
    }

    /**
     * Enqueues the BlobCreated event of every blob version not published yet, then records the receipt: a crash
     * in between publishes the event again on the next scan (Event Grid delivers at least once, too).
     */
    private async publishEvents(
        receipts: TableClient,
        subscription: LocalEventSubscription,
        report: BlobScanReport,
    ): Promise<void> {
        const receiptOwner = { name: `eventgrid~${subscription.name}`, trigger: { source: 'EventGrid' } };
        const known = await this.receiptsOf(receipts, receiptOwner);
        const container = this.options
            .connectionFor(subscription.connection)
            .blob.getContainerClient(subscription.container);
        const queue = await subscription.queue();
        const listed = new Set<string>();
        try {
            for await (const item of container.listBlobsFlat({ abortSignal: deadline() })) {
                if (this.stopped) return;
                const blobPath = `${subscription.container}/${item.name}`;
                listed.add(receiptRowKey(blobPath));
                const receipt = known.get(receiptRowKey(blobPath));
                const version = versionOf(receiptOwner, item);
                if (receipt && receipt.version === version) continue;
                const url = container.getBlobClient(item.name).url;
                await queue.sendMessage(subscription.message(item.name, item, url), { abortSignal: deadline() });
                const row: Receipt = {
                    partitionKey: encodeKey(receiptOwner.name),
                    rowKey: receiptRowKey(blobPath),
                    status: 'done',
                    version,
                    blobETag: item.properties.etag ?? '',
                    attempts: 1,
                    leaseUntil: this.options.clock.now().toISOString(),
                    blobPath,
                };
                try {
                    if (receipt)
                        await receipts.updateEntity(row, 'Replace', { etag: receipt.etag, abortSignal: deadline() });
                    else await receipts.createEntity(row, { abortSignal: deadline() });
                } catch (err) {
                    // Another host published it too: a duplicate event, which the merge acknowledges.
                    if (statusOf(err) !== 409 && statusOf(err) !== 412) throw err;
                }
                report.published++;
            }
        } catch (err) {
            if (statusOf(err) !== 404) throw err;
        }
        await this.forgetGone(receipts, known, listed);
    }

    /**
     * Deletes the receipts of blobs the listing no longer has. Each scan reads every receipt of its owner, so
     * without this a scan costs the count of blobs ever seen (a replica log is deleted once merged, its receipt
     * would stay), and the host's work per log grows with the history. A blob created again under the same name
     * is a new version, which fires whether or not its old receipt exists.
     */
    private async forgetGone(receipts: TableClient, known: Map<string, Receipt>, listed: Set<string>): Promise<void> {
        for (const [rowKey, receipt] of known) {
            if (this.stopped) return;
            if (listed.has(rowKey) || receipt.status === 'running') continue;
            try {
                await receipts.deleteEntity(receipt.partitionKey, rowKey, {
                    etag: receipt.etag,
                    abortSignal: deadline(),
                });
            } catch (err) {
                // Gone already, or rewritten by another host since this scan read it: its next scan decides.
                if (statusOf(err) !== 404 && statusOf(err) !== 412) throw err;
            }
        }
    }

    private async receiptsOf(table: TableClient, fn: Pick<RegisteredFunction, 'name'>): Promise<Map<string, Receipt>> {
        const out = new Map<string, Receipt>();
        const pk = encodeKey(fn.name);
        const rows = table.listEntities<Receipt>({
            queryOptions: { filter: `PartitionKey eq '${pk.replace(/'/g, "''")}'` },
            abortSignal: deadline(),
        });
        for await (const row of rows) out.set(row.rowKey, row);
        return out;
    }

    private due(fn: RegisteredFunction, item: BlobItem, receipt: Receipt | undefined): boolean {
        if (this.running.has(`${fn.name}\n${item.name}`)) return false;
        if (!receipt) return true;
        const version = versionOf(fn, item);
        if (receipt.version !== version) return true;
        if (receipt.status === 'failed') return true;
        if (receipt.status === 'running') return Date.parse(receipt.leaseUntil) <= this.options.clock.now().getTime();
        return false;
    }

    private async fire(
        table: TableClient,
        candidate: Candidate,
        previous: Receipt | undefined,
        report: BlobScanReport,
    ): Promise<void> {
        const { fn, pattern, item } = candidate;
        const blobPath = `${pattern.container}/${item.name}`;
        const version = versionOf(fn, item);
        const sameVersion = previous !== undefined && previous.version === version;
        const attempts = sameVersion ? previous.attempts + 1 : 1;
        const now = this.options.clock.now().getTime();
        const claim: Receipt = {
            partitionKey: encodeKey(fn.name),
            rowKey: receiptRowKey(blobPath),
            status: 'running',
            version,
            blobETag: item.properties.etag ?? '',
            attempts,
            leaseUntil: new Date(now + this.leaseMs).toISOString(),
            blobPath,
        };
        let claimETag: string | undefined;
        try {
            const result = previous
                ? await table.updateEntity(claim, 'Replace', { etag: previous.etag, abortSignal: deadline() })
                : await table.createEntity(claim, { abortSignal: deadline() });
            claimETag = result.etag;
        } catch (err) {
            // Another host (or scan) claimed this version first.
            if (statusOf(err) === 409 || statusOf(err) === 412) return;
            throw err;
        }
        const runningKey = `${fn.name}\n${item.name}`;
        this.running.add(runningKey);
        report.fired++;
        try {
            let failure: string | undefined;
            try {
                await this.options.invoke(await this.invocationFor(candidate));
            } catch (err) {
                const error = ensureErrorType(err);
                failure = `${error.name}: ${error.message}`;
            }
            if (failure === undefined) {
                await this.settle(table, { ...claim, status: 'done' }, claimETag);
                report.succeeded++;
                return;
            }
            this.options.log(`${fn.name} failed on ${blobPath} (try ${attempts} of ${this.maxTries}): ${failure}`);
            const lastError = failure.slice(0, 4000);
            if (attempts >= this.maxTries) {
                await this.poison(candidate, attempts, failure);
                await this.settle(table, { ...claim, status: 'poison', lastError }, claimETag);
                report.poisoned++;
            } else {
                await this.settle(table, { ...claim, status: 'failed', lastError }, claimETag);
                report.failed++;
            }
        } finally {
            this.running.delete(runningKey);
        }
    }

    private async settle(table: TableClient, receipt: Receipt, etag: string | undefined): Promise<void> {
        const entity: TableEntity<Receipt> = { ...receipt };
        delete entity.etag;
        await table.updateEntity(entity, 'Replace', { etag, abortSignal: deadline() });
    }

    private async invocationFor(candidate: Candidate): Promise<BlobInvocation> {
        const { fn, pattern, item, connection, bindingData } = candidate;
        const containerClient = connection.blob.getContainerClient(pattern.container);
        const blobClient = containerClient.getBlobClient(item.name);
        const p = item.properties;
        const triggerMetadata: Record<string, unknown> = {
            ...bindingData,
            blobTrigger: `${pattern.container}/${item.name}`,
            uri: blobClient.url,
            metadata: item.metadata ?? {},
            properties: {
                blobType: p.blobType,
                contentLength: p.contentLength,
                contentType: p.contentType,
                contentMD5: p.contentMD5 ? Buffer.from(p.contentMD5).toString('base64') : undefined,
                eTag: p.etag,
                createdOn: p.createdOn?.toISOString(),
                lastModified: p.lastModified.toISOString(),
                blobSequenceNumber: p.blobSequenceNumber,
                leaseState: p.leaseState,
            },
        };
        if (fn.trigger.sdkBinding === true) {
            return { fn, input: { blobClient, containerClient }, triggerMetadata };
        }
        const size = p.contentLength ?? 0;
        const limit = this.options.contentLimitBytes ?? DEFAULT_CONTENT_LIMIT_BYTES;
        if (size > limit) {
            // Logs can be half a disk: handlers such as mergeReplicaLog read ranges through the metadata instead.
            this.options.log(
                `${fn.name}: ${pattern.container}/${item.name} is ${size} bytes, over the ${limit}-byte content ` +
                    'limit; the trigger input is undefined (read the blob through triggerMetadata.uri).',
            );
            return { fn, input: undefined, triggerMetadata };
        }
        // A blob replaced since the listing has a new version, which fires again on a later scan.
        const content = await blobClient.downloadToBuffer(0, undefined, { abortSignal: deadline() });
        const input = fn.trigger.dataType === 'string' ? content.toString('utf8') : content;
        return { fn, input, triggerMetadata };
    }

    private async poison(candidate: Candidate, attempts: number, reason: string): Promise<void> {
        const { fn, pattern, item } = candidate;
        const queue = await this.options.host.queue(BLOB_POISON_QUEUE);
        const message = {
            FunctionId: fn.name,
            BlobType: item.properties.blobType,
            ContainerName: pattern.container,
            BlobName: item.name,
            ETag: item.properties.etag,
            Attempts: attempts,
            Reason: reason.slice(0, 8000),
            PoisonedAt: this.options.clock.now().toISOString(),
        };
        // Base64, as the Functions host writes queue messages, so a queue trigger could read it.
        await queue.sendMessage(Buffer.from(JSON.stringify(message)).toString('base64'), {
            messageTimeToLive: -1,
            abortSignal: deadline(),
        });
    }
}

async function runLimited(work: (() => Promise<void>)[], limit: number): Promise<void> {
    let next = 0;
    const errors: unknown[] = [];
    const lane = async (): Promise<void> => {
        while (next < work.length) {
            const job = work[next++]!;
            try {
                await job();
            } catch (err) {
                errors.push(err);
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(limit, work.length) }, lane));
    if (errors.length > 0) throw ensureErrorType(errors[0]);
}
