import type { Consistency } from '../contracts/uploadMetadata';
import { HvrError } from '../errors';
import { getReplicaDisk, ReplicaDiskRow, updateReplicaDisk } from '../state/disks';
import { updateProtectedItem } from '../state/protectedItems';
import {
    createOrReadRecoveryPoint,
    DiskSnapshot,
    getRecoveryPoint,
    RecoveryPoint,
    recoveryPointId,
    unclaimedSnapshots,
} from '../state/recoveryPoints';
import { deadline } from '../storage/deadline';
import { decodeRanges, encodeRanges, rangeBytes } from './byteRanges';
import {
    ChurnBaseline,
    ChurnMeasure,
    DiskChurn,
    EMPTY_MEASURE,
    learnBaseline,
    pointChurn,
    scoreDiskChurn,
} from './churnSignal';
import { protectSnapshots, RECOVERY_POINT_METRICS, RecoveryPointDeps } from './pointProtection';
import { pruneRecoveryPoints } from './pruneSweep';
import { replicaPageBlob } from './replicaDisk';
import { planRetention, RetentionPolicy, tiersOf } from './retentionSchedule';

export {
    assertDeletable,
    holdOf,
    protectSnapshots,
    RECOVERY_POINT_METRICS,
    SNAPSHOT_IMMUTABILITY_MODES,
    type RecoveryPointDeps,
    type SnapshotImmutability,
} from './pointProtection';
export { pruneRecoveryPoints, type SweepResult } from './pruneSweep';
export { tiersOf, type RetentionPolicy } from './retentionSchedule';

export const DEFAULT_RETENTION: RetentionPolicy = { retentionHours: 24, appConsistentFrequencyHours: 0 };

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
    const dropSnapshots = async (winner?: RecoveryPoint): Promise<void> => {
        for (const s of unclaimedSnapshots(snapshots, winner)) {
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
    const retention = input.retention ?? DEFAULT_RETENTION;
    const measured = measureCycle(input.disks);
    const point: RecoveryPoint = {
        vmId: input.vmId,
        cycleId: input.cycleId,
        recoveryPointId: recoveryPointId(input.vmId, input.cycleId),
        consistency: input.consistency,
        capturedAt: input.capturedAt,
        createdAt: deps.clock.now().toISOString(),
        disks: snapshots,
        changedBytes: measured.changedBytes,
        changes: measured.changes,
        churn: measured.churn,
    };
    if ((retention.minimumRetentionDays ?? 0) > 0) {
        point.holdUntil = new Date(
            Date.parse(input.capturedAt) + retention.minimumRetentionDays! * 24 * 3600_000,
        ).toISOString();
    }
    const outcome = await createOrReadRecoveryPoint(deps.scope, point);
    if (!outcome.created) {
        const { winner } = outcome;
        await dropSnapshots(winner);
        return {
            recoveryPointId: point.recoveryPointId,
            capturedAt: winner?.capturedAt ?? point.capturedAt,
            created: false,
        };
    }
    if (point.churn?.suspicious) {
        // The message is the JSON the SuspiciousChurn alert parses (infra/modules/alerts.bicep).
        deps.log?.(
            JSON.stringify({
                metric: RECOVERY_POINT_METRICS.suspiciousChurn,
                value: point.churn.score,
                vmId: point.vmId,
                recoveryPointId: point.recoveryPointId,
            }),
        );
    }
    if (point.churn?.suspicious) await markSuspicious(deps, point);
    await startNextChanges(deps, input.disks, point);
    if (point.holdUntil) await protectSnapshots(deps, point);
    await pruneRecoveryPoints(deps, input.vmId, retention);
    return { recoveryPointId: point.recoveryPointId, capturedAt: point.capturedAt, created: true };
}

/** Records the newest suspicious point on the protected item: the API shows SuspiciousChurn from it. */
async function markSuspicious(deps: RecoveryPointDeps, point: RecoveryPoint): Promise<void> {
    const mark = { recoveryPointId: point.recoveryPointId, capturedAt: point.capturedAt, score: point.churn!.score };
    try {
        await updateProtectedItem(
            deps.scope,
            point.vmId,
            (cur) =>
                cur.suspiciousChurn && Date.parse(cur.suspiciousChurn.capturedAt) >= Date.parse(mark.capturedAt)
                    ? undefined
                    : { suspiciousChurn: mark },
            deps.clock.now().toISOString(),
        );
    } catch (err) {
        // A replica whose VM is no longer protected has no item to mark (disable protection keeping replicas).
        if (!(err instanceof HvrError && err.code === 'NOT_FOUND')) throw err;
    }
}

/** Each disk's changes since its last point, scored against the disk's usual. */
function measureCycle(disks: readonly ReplicaDiskRow[]): {
    changedBytes: number;
    changes: Record<string, string>;
    churn: RecoveryPoint['churn'];
} {
    const changes: Record<string, string> = {};
    const churn: Record<string, DiskChurn> = {};
    let changedBytes = 0;
    // One table property holds every disk's ranges: share its 64 KiB between the disks.
    const budget = Math.max(256, Math.floor(28_000 / Math.max(1, disks.length)));
    for (const row of disks) {
        const ranges = decodeRanges(row.disk.pointChanges);
        const bytes = rangeBytes(ranges);
        changedBytes += bytes;
        changes[row.disk.diskId] = encodeRanges(ranges, budget);
        const measure = row.disk.pointChurn ? (JSON.parse(row.disk.pointChurn) as ChurnMeasure) : EMPTY_MEASURE;
        const baseline = row.disk.churnBaseline ? (JSON.parse(row.disk.churnBaseline) as ChurnBaseline) : undefined;
        churn[row.disk.diskId] = scoreDiskChurn(measure, bytes, row.disk.virtualSize, baseline);
    }
    return { changedBytes, changes, churn: pointChurn(churn) };
}

/**
 * After the point exists: each disk's changes start again from empty, and a clean point teaches the disk's
 * baseline. A disk that applied a later log meanwhile keeps its changes (they then count for the next point too:
 * an upper bound, never a loss).
 */
async function startNextChanges(
    deps: RecoveryPointDeps,
    disks: readonly ReplicaDiskRow[],
    point: RecoveryPoint,
): Promise<void> {
    const at = deps.clock.now().toISOString();
    for (const row of disks) {
        const diskChurn = point.churn?.disks[row.disk.diskId];
        const sequence = point.disks[row.disk.diskId]?.sequence;
        await updateReplicaDisk(
            deps.scope,
            row.disk.vmId,
            row.disk.diskId,
            (cur) => {
                const baseline = cur.churnBaseline ? (JSON.parse(cur.churnBaseline) as ChurnBaseline) : undefined;
                const learned =
                    diskChurn && !point.churn?.suspicious
                        ? JSON.stringify(learnBaseline(baseline, diskChurn))
                        : undefined;
                const reset = cur.sequence === sequence;
                if (!reset && learned === undefined) return undefined;
                return {
                    ...(reset ? { pointChanges: undefined, pointChurn: undefined } : {}),
                    ...(learned !== undefined ? { churnBaseline: learned } : {}),
                };
            },
            at,
        );
    }
}

/** Which points retention removes at `now` (shared/replica/retentionSchedule: tiers, newest, newest app-consistent). */
export function pointsToPrune(
    points: readonly RecoveryPoint[],
    now: Date,
    retention: RetentionPolicy,
    protectedIds: ReadonlySet<string> = new Set(),
): RecoveryPoint[] {
    return planRetention(points, now, tiersOf(retention), protectedIds).prune;
}
