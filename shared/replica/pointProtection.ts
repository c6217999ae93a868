import { ensureErrorType, HvrError } from '../errors';
import { Clock } from '../ports';
import { StateScope } from '../state/protectedItems';
import { listRecoveryPointRows, RecoveryPoint, replaceRecoveryPoint } from '../state/recoveryPoints';
import { deadline } from '../storage/deadline';
import { replicaPageBlob } from './replicaDisk';

/** Which blob immutability policy the app sets on each held point's snapshots (RECOVERY_POINT_IMMUTABILITY). */
export type SnapshotImmutability = 'Locked' | 'Unlocked' | 'None';
export const SNAPSHOT_IMMUTABILITY_MODES: readonly SnapshotImmutability[] = ['Locked', 'Unlocked', 'None'];

/** Trace names the alerts query (infra/modules/alerts.bicep): one owner. */
export const RECOVERY_POINT_METRICS = {
    suspiciousChurn: 'SuspiciousChurn',
    immutabilityFailed: 'RecoveryPointImmutabilityFailed',
} as const;

export interface RecoveryPointDeps {
    scope: StateScope;
    clock: Clock;
    callTimeoutMs?: number;
    signal?: AbortSignal;
    /** Default None: the hold is the app's alone (Azurite has no immutability). */
    immutability?: SnapshotImmutability;
    log?: (message: string, data?: Record<string, unknown>) => void;
}

/** Whether the point may not be deleted at `now`: a legal hold, or its minimum retention not yet over. */
export function holdOf(point: RecoveryPoint, now: Date): string | undefined {
    if (point.legalHold) return 'it is under a legal hold';
    if (point.holdUntil && Date.parse(point.holdUntil) > now.getTime()) {
        return `it is held until ${point.holdUntil} (the policy's minimum retention)`;
    }
    return undefined;
}

/** Throws PREREQUISITE_FAILED when the point is held: the app never deletes a held point, whoever asks. */
export function assertDeletable(point: RecoveryPoint, now: Date): void {
    const hold = holdOf(point, now);
    if (hold) {
        throw new HvrError(
            'PREREQUISITE_FAILED',
            `Recovery point ${point.recoveryPointId} cannot be deleted: ${hold}.`,
            { recoveryPointId: point.recoveryPointId, holdUntil: point.holdUntil, legalHold: point.legalHold ?? false },
        );
    }
}

/**
 * Sets the blob immutability policy on the held point's snapshots (until `holdUntil`), then records which mode
 * holds them. A refusal (Azurite, or a container without version-level immutability) leaves the app's own hold
 * and records None, traced so an alert can say the storage does not enforce it.
 */
export async function protectSnapshots(deps: RecoveryPointDeps, point: RecoveryPoint): Promise<RecoveryPoint> {
    const mode = deps.immutability ?? 'None';
    let applied: SnapshotImmutability = 'None';
    if (mode !== 'None' && point.holdUntil) {
        try {
            for (const s of Object.values(point.disks)) {
                await replicaPageBlob(deps.scope.conn.blob, s.blobName)
                    .withSnapshot(s.snapshot)
                    .setImmutabilityPolicy(
                        { expiriesOn: new Date(point.holdUntil), policyMode: mode },
                        { abortSignal: deadline(deps.callTimeoutMs, deps.signal) },
                    );
            }
            applied = mode;
        } catch (err) {
            deps.log?.(
                JSON.stringify({
                    metric: RECOVERY_POINT_METRICS.immutabilityFailed,
                    value: 1,
                    vmId: point.vmId,
                    recoveryPointId: point.recoveryPointId,
                    error: ensureErrorType(err).message.split('\n')[0]!,
                }),
            );
        }
    }
    for (let attempt = 1; attempt <= 4; attempt++) {
        const row = (await listRecoveryPointRows(deps.scope, point.vmId)).find(
            (r) => r.point.cycleId === point.cycleId,
        );
        if (!row) return point;
        try {
            await replaceRecoveryPoint(deps.scope, { ...row, point: { ...row.point, immutability: applied } });
            return { ...row.point, immutability: applied };
        } catch (err) {
            if (attempt === 4 || !(err instanceof HvrError && err.code === 'CONCURRENT_UPDATE')) throw err;
        }
    }
    return point;
}
