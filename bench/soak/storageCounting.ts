import type { RunningAzurite } from '../../packages/functions-local/src';
import { startStorageCounter, StorageCounts } from '../support/storageCounter';
import type { StorageOpKind } from '../support/storageOps';

/**
 * The soak benchmark's storage transactions: the host's storage goes through the counting proxy
 * (bench/support/storageCounter.ts), so every call of the pipeline — the app, the Durable engine, the provider's
 * uploads through the grants the host signs — is counted by kind. The bench's own reads (recovery points,
 * replicas) go to Azurite directly and are not counted.
 */
export interface StorageCounting {
    connectionString: string;
    counts(): StorageCounts;
    stop(): Promise<void>;
}

export async function startStorageCounting(azurite: RunningAzurite): Promise<StorageCounting> {
    const counter = await startStorageCounter(azurite, { callers: ['host'] });
    return {
        connectionString: counter.connectionString('host'),
        counts: () => counter.counts('host'),
        stop: () => counter.close(),
    };
}

/** The groups the issue names, each the sum of its REST operation kinds. */
export const TRANSACTION_GROUPS: Record<string, readonly StorageOpKind[]> = {
    putPage: ['blob.putPage'],
    clearPages: ['blob.clearPages'],
    getBlobRanges: ['blob.getBlobRange'],
    getBlob: ['blob.getBlob'],
    snapshots: ['blob.snapshot'],
    putBlob: ['blob.putBlob', 'blob.putBlock', 'blob.putBlockList'],
    tableReads: ['table.query', 'table.pointRead', 'table.queryTables'],
    tableWrites: ['table.insert', 'table.update', 'table.merge', 'table.delete', 'table.batch'],
    queueMessages: ['queue.putMessage', 'queue.getMessages', 'queue.deleteMessage', 'queue.updateMessage'],
};

/** Requests between two readings, by group, all of them, and by kind. */
export function transactionsBetween(
    before: StorageCounts,
    after: StorageCounts,
): { total: number; groups: Record<string, number>; byKind: Record<string, number> } {
    const byKind: Record<string, number> = {};
    for (const [kind, count] of Object.entries(after.byKind)) {
        const earlier = before.byKind[kind as StorageOpKind]?.requests ?? 0;
        const n = (count?.requests ?? 0) - earlier;
        if (n > 0) byKind[kind] = n;
    }
    const groups = Object.fromEntries(
        Object.entries(TRANSACTION_GROUPS).map(([group, kinds]) => [
            group,
            kinds.reduce((n, k) => n + (byKind[k] ?? 0), 0),
        ]),
    );
    return { total: after.requests - before.requests, groups, byKind };
}
