import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import type { PointChurn } from '../replica/churnSignal';
import { deadline } from '../storage/deadline';
import { StateScope, stateTable } from './protectedItems';
import {
    assertEntityWithinLimits,
    createEntityIfAbsent,
    encodeKey,
    getEntityOrUndefined,
    mapTableError,
} from './tables';

export const RECOVERY_POINTS_TABLE = 'RecoveryPoints';

/** The snapshot of one disk that a recovery point restores from. */
export interface DiskSnapshot {
    /** Page blob name in the `replicas` container. */
    blobName: string;
    /** The snapshot's timestamp id (`?snapshot=`). */
    snapshot: string;
    /** Logs applied to the disk at the snapshot (its blob sequence number). */
    sequence: number;
}

/** A VM-consistent point in time: every disk of the VM at the end of the same replication cycle. */
export interface RecoveryPoint {
    vmId: string;
    cycleId: string;
    recoveryPointId: string;
    consistency: 'CrashConsistent' | 'AppConsistent';
    /** When the provider captured the cycle (ISO 8601). */
    capturedAt: string;
    createdAt: string;
    disks: Record<string, DiskSnapshot>;
    /** Distinct bytes the VM's disks changed since the previous point (from the merge's write ranges). */
    changedBytes?: number;
    /** Per disk, those ranges (shared/replica/byteRanges encoding): pruning a point merges them into the next. */
    changes?: Record<string, string>;
    /** The churn signal of the cycle, and whether it looks like mass encryption. */
    churn?: PointChurn;
    /** No one may delete the point before this instant (the policy's minimum retention). */
    holdUntil?: string;
    /** Kept until an operator releases it, whatever the schedule. */
    legalHold?: boolean;
    /** The blob immutability policy set on the point's snapshots in Azure, or None (app-enforced hold only). */
    immutability?: 'Locked' | 'Unlocked' | 'None';
    /** Set when the prune sweep started removing the point: it is no longer offered, and the sweep finishes it. */
    pruningSince?: string;
}

/** A point as read, with the ETag a conditional update needs. */
export interface RecoveryPointRow {
    point: RecoveryPoint;
    etag: string;
}

/** One point per (VM, cycle): the row key is the cycle, so two disks finishing together create it once. */
export function recoveryPointId(vmId: string, cycleId: string): string {
    return `${vmId}:${cycleId}`;
}

function toEntity(point: RecoveryPoint): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(point.vmId),
        rowKey: encodeKey(point.cycleId),
        vmId: point.vmId,
        cycleId: point.cycleId,
        recoveryPointId: point.recoveryPointId,
        consistency: point.consistency,
        capturedAt: point.capturedAt,
        createdAt: point.createdAt,
        disks: JSON.stringify(point.disks),
    };
    for (const key of OPTIONAL_FIELDS) {
        const value = point[key];
        if (value === undefined) continue;
        entity[key] = typeof value === 'object' ? JSON.stringify(value) : value;
    }
    assertEntityWithinLimits(entity);
    return entity;
}

const OPTIONAL_FIELDS = [
    'changedBytes',
    'changes',
    'churn',
    'holdUntil',
    'legalHold',
    'immutability',
    'pruningSince',
] as const;
const JSON_OPTIONAL: readonly string[] = ['changes', 'churn'];

function fromEntity(entity: Record<string, unknown>): RecoveryPoint {
    const point: RecoveryPoint = {
        vmId: entity.vmId as string,
        cycleId: entity.cycleId as string,
        recoveryPointId: entity.recoveryPointId as string,
        consistency: entity.consistency as RecoveryPoint['consistency'],
        capturedAt: entity.capturedAt as string,
        createdAt: entity.createdAt as string,
        disks: JSON.parse(entity.disks as string) as Record<string, DiskSnapshot>,
    };
    const optional = point as unknown as Record<string, unknown>;
    for (const key of OPTIONAL_FIELDS) {
        const value = entity[key];
        if (value === undefined || value === null) continue;
        optional[key] = JSON_OPTIONAL.includes(key) && typeof value === 'string' ? JSON.parse(value) : value;
    }
    return point;
}

/**
 * Records a point, or reads the cycle's other one: `created` false with the `winner` (the row there, undefined if
 * it went meanwhile). A row holding exactly this point's snapshots is this call's own: the SDK retried a create
 * whose first answer was lost, and the caller must not delete the snapshots the row now names.
 */
export async function createOrReadRecoveryPoint(
    scope: StateScope,
    point: RecoveryPoint,
): Promise<{ created: true } | { created: false; winner: RecoveryPoint | undefined }> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    if (await createEntityIfAbsent(table, toEntity(point), `Recovery point ${point.recoveryPointId}`)) {
        return { created: true };
    }
    const existing = await getRecoveryPoint(scope, point.vmId, point.cycleId);
    const ours =
        existing !== undefined &&
        Object.keys(existing.disks).length === Object.keys(point.disks).length &&
        unclaimedSnapshots(point.disks, existing).length === 0;
    return ours ? { created: true } : { created: false, winner: existing };
}

/** Records a point; false (nothing changed) when the cycle already has another one (createOrReadRecoveryPoint). */
export async function createRecoveryPoint(scope: StateScope, point: RecoveryPoint): Promise<boolean> {
    return (await createOrReadRecoveryPoint(scope, point)).created;
}

/**
 * The snapshots a losing writer of a cycle's point may delete: its own, less any the winner's row names (a
 * snapshot id is a timestamp; nothing here relies on two writers never getting the same one).
 */
export function unclaimedSnapshots(
    ours: Record<string, DiskSnapshot>,
    winner: RecoveryPoint | undefined,
): DiskSnapshot[] {
    const claimed = new Set(Object.values(winner?.disks ?? {}).map((d) => `${d.blobName}?${d.snapshot}`));
    return Object.values(ours).filter((d) => !claimed.has(`${d.blobName}?${d.snapshot}`));
}

export async function getRecoveryPoint(
    scope: StateScope,
    vmId: string,
    cycleId: string,
): Promise<RecoveryPoint | undefined> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(vmId), encodeKey(cycleId));
    return entity ? fromEntity(entity) : undefined;
}

export interface ListRecoveryPointsOptions {
    /** Only points captured at or after this instant. */
    from?: Date;
    /** Only points captured at or before this instant. */
    to?: Date;
    consistency?: RecoveryPoint['consistency'];
    /** Also points the prune sweep is removing (only the sweep wants them). */
    includePruning?: boolean;
}

/** The VM's points, newest capture first. */
export async function listRecoveryPoints(
    scope: StateScope,
    vmId: string,
    options: ListRecoveryPointsOptions = {},
): Promise<RecoveryPoint[]> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    const pk = encodeKey(vmId).replace(/'/g, "''");
    const points: RecoveryPoint[] = [];
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${pk}'` },
        abortSignal: deadline(),
    })) {
        const point = fromEntity(entity);
        const t = Date.parse(point.capturedAt);
        if (options.from && t < options.from.getTime()) continue;
        if (options.to && t > options.to.getTime()) continue;
        if (options.consistency && point.consistency !== options.consistency) continue;
        if (point.pruningSince !== undefined && !options.includePruning) continue;
        points.push(point);
    }
    return points.sort(
        (a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt) || b.cycleId.localeCompare(a.cycleId),
    );
}

/** The newest point (of a consistency, if given), or undefined. */
export async function getLatestRecoveryPoint(
    scope: StateScope,
    vmId: string,
    consistency?: RecoveryPoint['consistency'],
): Promise<RecoveryPoint | undefined> {
    return (await listRecoveryPoints(scope, vmId, { consistency }))[0];
}

/** The newest point captured at or before `at`: what a failover "to this time" restores. */
export async function getRecoveryPointAt(
    scope: StateScope,
    vmId: string,
    at: Date,
): Promise<RecoveryPoint | undefined> {
    return (await listRecoveryPoints(scope, vmId, { to: at }))[0];
}

export async function deleteRecoveryPoint(scope: StateScope, vmId: string, cycleId: string): Promise<boolean> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    try {
        await table.deleteEntity(encodeKey(vmId), encodeKey(cycleId), { abortSignal: deadline() });
        return true;
    } catch (err) {
        if (err instanceof RestError && err.statusCode === 404) return false;
        throw mapTableError(err, `Recovery point ${vmId}/${cycleId}`);
    }
}

/** The VM's points with their ETags, newest capture first, those being pruned included (for the prune sweep). */
export async function listRecoveryPointRows(scope: StateScope, vmId: string): Promise<RecoveryPointRow[]> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    const pk = encodeKey(vmId).replace(/'/g, "''");
    const rows: RecoveryPointRow[] = [];
    for await (const entity of table.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${pk}'` },
        abortSignal: deadline(),
    })) {
        rows.push({ point: fromEntity(entity), etag: entity.etag });
    }
    return rows.sort(
        (a, b) =>
            Date.parse(b.point.capturedAt) - Date.parse(a.point.capturedAt) ||
            b.point.cycleId.localeCompare(a.point.cycleId),
    );
}

/** Replaces the point if it is still the version read (ETag); CONCURRENT_UPDATE otherwise. */
export async function replaceRecoveryPoint(scope: StateScope, row: RecoveryPointRow): Promise<void> {
    const table = await stateTable(scope, RECOVERY_POINTS_TABLE);
    try {
        await table.updateEntity(toEntity(row.point), 'Replace', { etag: row.etag, abortSignal: deadline() });
    } catch (err) {
        throw mapTableError(err, `Recovery point ${row.point.recoveryPointId}`);
    }
}
