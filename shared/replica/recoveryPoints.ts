import { RestError } from '@azure/core-rest-pipeline';
import type { Consistency } from '../contracts/uploadMetadata';
import { Clock } from '../ports';
import { getReplicaDisk, ReplicaDiskRow } from '../state/disks';
import { StateScope } from '../state/protectedItems';
import {
    createRecoveryPoint,
    deleteRecoveryPoint,
    DiskSnapshot,
    getRecoveryPoint,
    listRecoveryPoints,
    RecoveryPoint,
    recoveryPointId,
} from '../state/recoveryPoints';
import { deadline } from '../storage/deadline';
import { replicaPageBlob } from './replicaDisk';

/** How long points are kept, from the VM's replication policy. */
export interface RetentionPolicy {
    /** Points captured longer ago than this are pruned (0 keeps only the newest). No upper cap here (≥ 72 is fine). */
    retentionHours: number;
    /** Hours between app-consistent points (0: none); informs how long the newest one must outlive retention. */
    appConsistentFrequencyHours?: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { retentionHours: 24, appConsistentFrequencyHours: 0 };

export interface RecoveryPointDeps {
    scope: StateScope;
    clock: Clock;
    callTimeoutMs?: number;
    signal?: AbortSignal;
}

export interface CycleInput {
    vmId: string;
    cycleId: string;
    consistency: Consistency;
    capturedAt: string;
    /** The VM's disk rows as read after this disk's row was updated. */
    disks: ReplicaDiskRow[];
    retention?: RetentionPolicy;
}

/** True when every disk of the VM has applied its log of the cycle, and none is in the middle of a later one. */
export function isCycleComplete(disks: readonly ReplicaDiskRow[], cycleId: string): boolean {
    return (
        disks.length > 0 &&
        disks.every(
            (d) =>
                d.disk.state === 'Replicating' &&
                d.disk.lastCycleId === cycleId &&
                (d.disk.applyingSequence === undefined || d.disk.applyingSequence <= d.disk.sequence),
        )
    );
}

/**
 * Records the cycle's recovery point if the cycle is complete: snapshots every disk, checks no disk row moved
 * meanwhile (a later log writes pages only after its intent changes the row, so unchanged rows prove the
 * snapshots hold exactly this cycle), then creates the point keyed by (VM, cycle). Two disks finishing at once
 * both try; the table's create decides, and the loser deletes its snapshots. Then prunes by retention.
 */
export async function recordCycleIfComplete(
    deps: RecoveryPointDeps,
    input: CycleInput,
): Promise<{ recoveryPointId: string; capturedAt: string; created: boolean } | undefined> {
    if (!isCycleComplete(input.disks, input.cycleId)) return undefined;
    const existing = await getRecoveryPoint(deps.scope, input.vmId, input.cycleId);
    if (existing) return { recoveryPointId: existing.recoveryPointId, capturedAt: existing.capturedAt, created: false };

    const blob = deps.scope.conn.blob;
    const snapshots: Record<string, DiskSnapshot> = {};
    const signal = (): AbortSignal => deadline(deps.callTimeoutMs, deps.signal);
    const dropSnapshots = async (): Promise<void> => {
        for (const s of Object.values(snapshots)) {
            await replicaPageBlob(blob, s.blobName).withSnapshot(s.snapshot).deleteIfExists({ abortSignal: signal() });
        }
    };
    for (const row of input.disks) {
        const page = replicaPageBlob(blob, row.disk.blobName);
        const snap = await page.createSnapshot({ abortSignal: signal() });
        snapshots[row.disk.diskId] = {
            blobName: row.disk.blobName,
            snapshot: snap.snapshot!,
            sequence: row.disk.sequence,
        };
    }
    for (const row of input.disks) {
        const now = await getReplicaDisk(deps.scope, row.disk.vmId, row.disk.diskId);
        if (!now || now.etag !== row.etag) {
            await dropSnapshots();
            return undefined;
        }
    }
    const point: RecoveryPoint = {
        vmId: input.vmId,
        cycleId: input.cycleId,
        recoveryPointId: recoveryPointId(input.vmId, input.cycleId),
        consistency: input.consistency,
        capturedAt: input.capturedAt,
        createdAt: deps.clock.now().toISOString(),
        disks: snapshots,
    };
    const created = await createRecoveryPoint(deps.scope, point);
    if (!created) {
        await dropSnapshots();
        const winner = await getRecoveryPoint(deps.scope, input.vmId, input.cycleId);
        return {
            recoveryPointId: point.recoveryPointId,
            capturedAt: winner?.capturedAt ?? point.capturedAt,
            created: false,
        };
    }
    await pruneRecoveryPoints(deps, input.vmId, input.retention ?? DEFAULT_RETENTION);
    return { recoveryPointId: point.recoveryPointId, capturedAt: point.capturedAt, created: true };
}

/** Which points retention removes: older than the window, except the newest point and the newest app-consistent one. */
export function pointsToPrune(
    points: readonly RecoveryPoint[],
    now: Date,
    retention: RetentionPolicy,
): RecoveryPoint[] {
    const cutoff = now.getTime() - retention.retentionHours * 3600_000;
    const newestFirst = [...points].sort((a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt));
    const keep = new Set<string>();
    if (newestFirst[0]) keep.add(newestFirst[0].cycleId);
    const latestApp = newestFirst.find((p) => p.consistency === 'AppConsistent');
    // Until the next app-consistent point exists, the last one stays: there must always be one to fail over to.
    if (latestApp) keep.add(latestApp.cycleId);
    return newestFirst.filter((p) => !keep.has(p.cycleId) && Date.parse(p.capturedAt) < cutoff);
}

/**
 * Removes expired points: the row first (no one may pick a point whose snapshots are going), then its snapshots.
 * Returns the removed points.
 */
export async function pruneRecoveryPoints(
    deps: RecoveryPointDeps,
    vmId: string,
    retention: RetentionPolicy,
): Promise<RecoveryPoint[]> {
    const expired = pointsToPrune(await listRecoveryPoints(deps.scope, vmId), deps.clock.now(), retention);
    for (const point of expired) {
        await deleteRecoveryPoint(deps.scope, vmId, point.cycleId);
        for (const s of Object.values(point.disks)) {
            try {
                await replicaPageBlob(deps.scope.conn.blob, s.blobName)
                    .withSnapshot(s.snapshot)
                    .deleteIfExists({ abortSignal: deadline(deps.callTimeoutMs, deps.signal) });
            } catch (err) {
                if (!(err instanceof RestError && err.statusCode === 404)) throw err;
            }
        }
    }
    return expired;
}
