import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import type { Consistency } from '../contracts/uploadMetadata';
import { HvrError } from '../errors';
import { ResyncReason } from '../lifecycle/instances';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import {
    assertEntityWithinLimits,
    createEntityIfAbsent,
    encodeKey,
    getEntityOrUndefined,
    mapTableError,
} from './tables';

export const REPLICA_DISKS_TABLE = 'ReplicaDisks';

/** Replicating: logs apply in chain order. ResyncRequired: only the log a running resync expects applies. */
export type ReplicaDiskState = 'Replicating' | 'ResyncRequired';

/**
 * One protected virtual disk and how far its replica has come. Partition = VM, row = disk, so a VM's disks are
 * one partition query (the merge reads them to decide when a replication cycle is complete).
 */
export interface ReplicaDiskRecord {
    vmId: string;
    diskId: string;
    siteId: string;
    /** Bytes of disk data (a whole number of MiB); the replica blob is this + 512. */
    virtualSize: number;
    /** `{vmId}/{diskId}.vhd` in the `replicas` container. */
    blobName: string;
    state: ReplicaDiskState;
    resyncReason?: ResyncReason;
    resyncDetail?: string;
    resyncRequiredAt?: string;
    /** Logs applied = the replica blob's sequence number once this row is up to date. */
    sequence: number;
    /** UniqueId of the last applied log; the next log's PreviousUniqueId must equal it. */
    lastLogId?: string;
    /** The VHDX data-write GUID that the chain's logs carry; a change means the disk was modified offline. */
    vhd2DataWriteGuid?: string;
    /** Write intent: set before the first page write of log `applyingSequence`, so a retry can finish it. */
    applyingSequence?: number;
    applyingLogId?: string;
    /**
     * How far the log under the intent got: steps of its plan written (in plan order) by invocations whose time
     * budget ran out, and the plan's key (the plan depends on MERGE_READ_BYTES). Cleared with the intent.
     */
    applyingStep?: number;
    applyingPlan?: string;
    /** The log blob's ETag when the intent was taken: a continuation must find the same content. */
    applyingLogETag?: string;
    appliedBytes: number;
    lastAppliedAt?: string;
    lastCapturedAt?: string;
    lastCycleId?: string;
    lastConsistency?: Consistency;
    /**
     * What the logs applied since the disk's last recovery point wrote: the disk ranges (shared/replica/byteRanges
     * encoding) and the churn measure (JSON of shared/replica/churnSignal ChurnMeasure). The next point takes them
     * as its own and they start again from empty.
     */
    pointChanges?: string;
    pointChurn?: string;
    /** The disk's usual churn, learned from its clean points (JSON of ChurnBaseline). */
    churnBaseline?: string;
    /** The lowest log sequence seen uploaded ahead of a missing one, and since when the gap is open. */
    waitingSequence?: number;
    waitingSince?: string;
    createdAt: string;
    updatedAt: string;
}

/** A row as read, with the ETag that a conditional update needs. */
export interface ReplicaDiskRow {
    disk: ReplicaDiskRecord;
    etag: string;
}

const META_KEYS = new Set(['partitionKey', 'rowKey', 'etag', 'timestamp', 'odata.metadata']);

function toEntity(disk: ReplicaDiskRecord): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(disk.vmId),
        rowKey: encodeKey(disk.diskId),
    };
    for (const [key, value] of Object.entries(disk)) if (value !== undefined) entity[key] = value;
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(entity: Record<string, unknown>): ReplicaDiskRecord {
    const disk: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entity)) if (!META_KEYS.has(key)) disk[key] = value;
    return disk as unknown as ReplicaDiskRecord;
}

export async function getReplicaDisk(
    scope: StateScope,
    vmId: string,
    diskId: string,
): Promise<ReplicaDiskRow | undefined> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(diskId));
    return entity ? { disk: fromEntity(entity), etag: entity.etag } : undefined;
}

/** Creates the disk row; returns false (and changes nothing) when it already exists. */
export async function createReplicaDiskRecord(scope: StateScope, disk: ReplicaDiskRecord): Promise<boolean> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    return createEntityIfAbsent(table, toEntity(disk), `Replica disk ${disk.vmId}/${disk.diskId}`);
}

/** The VM's disks, in disk id order. */
export async function listReplicaDisks(scope: StateScope, vmId: string): Promise<ReplicaDiskRow[]> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    const rows: ReplicaDiskRow[] = [];
    const pk = encodeKey(vmId).replace(/'/g, "''");
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${pk}'` },
        abortSignal: deadline(),
    })) {
        rows.push({ disk: fromEntity(entity), etag: entity.etag });
    }
    return rows.sort((a, b) => a.disk.diskId.localeCompare(b.disk.diskId));
}

/** Disks with a log waiting for a missing one (the gap sweep visits them). */
export async function listDisksWithGaps(scope: StateScope): Promise<ReplicaDiskRow[]> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    const rows: ReplicaDiskRow[] = [];
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `waitingSince ne ''` },
        abortSignal: deadline(),
    })) {
        const disk = fromEntity(entity);
        if (disk.waitingSince) rows.push({ disk, etag: entity.etag });
    }
    return rows;
}

/** Disks whose row holds a write intent (a log being applied, or cut off and awaiting its retry), by VM. */
export async function listDisksBeingApplied(scope: StateScope): Promise<ReplicaDiskRecord[]> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    const disks: ReplicaDiskRecord[] = [];
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `applyingSequence ge 1` },
        abortSignal: deadline(),
    })) {
        const disk = fromEntity(entity);
        if (disk.applyingSequence !== undefined && disk.applyingSequence > disk.sequence) disks.push(disk);
    }
    return disks;
}

/** Fields an update may set; a field set to undefined is removed from the row. */
export type ReplicaDiskChanges = Partial<Omit<ReplicaDiskRecord, 'vmId' | 'diskId' | 'createdAt'>>;

/**
 * Replaces the row only if it still has `etag`: CONCURRENT_UPDATE when someone else wrote it first
 * (the caller reads again and decides again: its decision may no longer hold).
 */
export async function replaceReplicaDisk(
    scope: StateScope,
    row: ReplicaDiskRow,
    changes: ReplicaDiskChanges,
    at: string,
): Promise<ReplicaDiskRow> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    const next = { ...row.disk, ...changes, updatedAt: at } as Record<string, unknown>;
    for (const key of Object.keys(changes))
        if (changes[key as keyof ReplicaDiskChanges] === undefined) delete next[key];
    const disk = next as unknown as ReplicaDiskRecord;
    try {
        const response = await table.updateEntity(toEntity(disk), 'Replace', {
            etag: row.etag,
            abortSignal: deadline(),
        });
        return { disk, etag: response.etag ?? '' };
    } catch (err) {
        throw mapTableError(err, `Replica disk ${row.disk.vmId}/${row.disk.diskId}`);
    }
}

/**
 * Read-modify-write with the ETag, retried when another writer got there first. `change` sees the current row
 * and returns the fields to set, or undefined to leave it as it is. `known` is a row the caller wrote or read
 * itself: the first try uses it instead of reading (one round trip less when nobody wrote since); its ETag
 * still conditions the write, and a stale one only costs the read. A `known` row for which `change` sets
 * nothing, or throws, is read again before that answer counts: it may be stale.
 */
export async function updateReplicaDisk(
    scope: StateScope,
    vmId: string,
    diskId: string,
    change: (current: ReplicaDiskRecord) => ReplicaDiskChanges | undefined,
    at: string,
    known?: ReplicaDiskRow,
): Promise<ReplicaDiskRow> {
    for (let attempt = 1; ; attempt++) {
        const assumed = attempt === 1 ? known : undefined;
        if (assumed) {
            let changes: ReplicaDiskChanges | undefined;
            try {
                changes = change(assumed.disk);
            } catch {
                // Judged on a row that may be stale: only a fresh read can make `change` refuse.
                continue;
            }
            if (changes) {
                try {
                    return await replaceReplicaDisk(scope, assumed, changes, at);
                } catch (err) {
                    if (err instanceof HvrError && err.code === 'CONCURRENT_UPDATE') continue;
                    throw err;
                }
            }
            continue;
        }
        const row = await getReplicaDisk(scope, vmId, diskId);
        if (!row) {
            throw new HvrError('REPLICA_NOT_FOUND', `Disk ${diskId} of VM ${vmId} has no replica disk row.`, {
                vmId,
                diskId,
            });
        }
        const changes = change(row.disk);
        if (!changes) return row;
        try {
            return await replaceReplicaDisk(scope, row, changes, at);
        } catch (err) {
            if (err instanceof HvrError && err.code === 'CONCURRENT_UPDATE' && attempt < 8) continue;
            throw err;
        }
    }
}

export async function deleteReplicaDiskRecord(scope: StateScope, vmId: string, diskId: string): Promise<boolean> {
    const table = await stateTable(scope, REPLICA_DISKS_TABLE);
    try {
        await table.deleteEntity(encodeKey(vmId), encodeKey(diskId), { abortSignal: deadline() });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Replica disk ${vmId}/${diskId}`);
    }
}
