import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { RestError } from '@azure/core-rest-pipeline';
import type { BlobLeaseClient, BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { LocalPlatformError } from '../errors';
import { deadline } from '../storage';

/** The blob whose lease says which host owns a task hub's embedded state. */
export const OWNER_BLOB = 'owner';
/** Seconds a lease lasts unless renewed: how long a killed host keeps its successor waiting, at most. */
export const DEFAULT_LEASE_SECONDS = 15;

/** What a host does when another one owns the task hub: wait for the lease, or fail at once. */
export type IfHubOwned = 'wait' | 'exit';

export interface HubOwner {
    owner: string;
    since: string;
}

export interface TaskHubLeaseOptions {
    /** Who this host is, as a second host will print it. Default `<hostname> pid <pid>`. */
    owner?: string;
    /** Lease length, 15 to 60 s (Blob storage's bounds). Default 15. */
    leaseSeconds?: number;
    ifOwned?: IfHubOwned;
    /** How often a waiting host tries again. Default a third of the lease. */
    retryMs?: number;
    /** Called when the lease could not be renewed and another host took it: this host must stop writing. */
    onLost?: (why: string) => void;
    log?: (line: string) => void;
}

function statusOf(err: unknown): number | undefined {
    return err instanceof RestError ? err.statusCode : undefined;
}

async function ownerOf(blob: BlockBlobClient): Promise<HubOwner> {
    const props = await blob.getProperties({ abortSignal: deadline() });
    return { owner: props.metadata?.owner ?? 'an unknown host', since: props.metadata?.since ?? 'an unknown time' };
}

/**
 * One host at a time owns a task hub's embedded state: a blob lease on `<container>/owner`, renewed at a third
 * of its length. The owner and the time it took the lease are the blob's metadata, so a second host can say who
 * holds it. A host killed without releasing keeps the lease until it expires (DEFAULT_LEASE_SECONDS).
 */
export class TaskHubLease {
    private renewal: NodeJS.Timeout | undefined;
    private released = false;

    private constructor(
        private readonly lease: BlobLeaseClient,
        readonly owner: HubOwner,
        private readonly leaseSeconds: number,
        private readonly options: TaskHubLeaseOptions,
    ) {}

    /** Takes the lease, waiting for it (or failing with CONFLICT, `ifOwned: 'exit'`) while another host holds it. */
    static async acquire(container: ContainerClient, options: TaskHubLeaseOptions = {}): Promise<TaskHubLease> {
        const leaseSeconds = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
        if (!(leaseSeconds >= 15 && leaseSeconds <= 60)) {
            throw new LocalPlatformError('VALIDATION_FAILED', `leaseSeconds must be 15 to 60, got ${leaseSeconds}`);
        }
        const log = options.log ?? (() => undefined);
        const where = `${container.containerName}/${OWNER_BLOB}`;
        await container.createIfNotExists({ abortSignal: deadline() });
        const blob = container.getBlockBlobClient(OWNER_BLOB);
        try {
            await blob.upload('', 0, { conditions: { ifNoneMatch: '*' }, abortSignal: deadline() });
        } catch (err) {
            if (statusOf(err) !== 409 && statusOf(err) !== 412) throw err;
        }
        const lease = blob.getBlobLeaseClient(randomUUID());
        const me = options.owner ?? `${hostname()} pid ${process.pid}`;
        let told = '';
        for (;;) {
            try {
                await lease.acquireLease(leaseSeconds, { abortSignal: deadline() });
                break;
            } catch (err) {
                if (statusOf(err) !== 409) throw err;
            }
            const holder = await ownerOf(blob);
            const line =
                `The task hub's durable state (${where}) is owned by ${holder.owner} since ${holder.since}; ` +
                `its lease expires ${leaseSeconds} s after that host stops renewing it.`;
            if (options.ifOwned === 'exit') throw new LocalPlatformError('CONFLICT', line, { ...holder });
            if (line !== told) log(`${line} Waiting for it...`);
            told = line;
            await new Promise((r) => setTimeout(r, options.retryMs ?? (leaseSeconds * 1000) / 3));
        }
        const owner = { owner: me, since: new Date().toISOString() };
        await blob.setMetadata({ ...owner }, { conditions: { leaseId: lease.leaseId }, abortSignal: deadline() });
        log(`This host (${me}) owns the task hub's durable state (${where}).`);
        const held = new TaskHubLease(lease, owner, leaseSeconds, options);
        held.scheduleRenewal();
        return held;
    }

    private scheduleRenewal(): void {
        this.renewal = setTimeout(() => void this.renew(), (this.leaseSeconds * 1000) / 3);
        this.renewal.unref();
    }

    private async renew(): Promise<void> {
        if (this.released) return;
        try {
            await this.lease.renewLease({ abortSignal: deadline(5000) });
        } catch (renewErr) {
            // An expired lease nobody else took can be taken again with the same id; one another host holds cannot.
            try {
                await this.lease.acquireLease(this.leaseSeconds, { abortSignal: deadline(5000) });
            } catch (err) {
                if (statusOf(err) === 409) {
                    this.released = true;
                    this.options.onLost?.(
                        `the task hub lease was lost (${(renewErr as Error).message.split('\n')[0]}); another host took it`,
                    );
                    return;
                }
                this.options.log?.(`renewing the task hub lease failed, trying again: ${(err as Error).message}`);
            }
        }
        if (!this.released) this.scheduleRenewal();
    }

    /** Gives the task hub up, so the next host starts at once. */
    async release(): Promise<void> {
        if (this.released) return;
        this.released = true;
        if (this.renewal) clearTimeout(this.renewal);
        try {
            await this.lease.releaseLease({ abortSignal: deadline(5000) });
        } catch (err) {
            this.options.log?.(`releasing the task hub lease failed: ${(err as Error).message}`);
        }
    }
}
