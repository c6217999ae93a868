import { HvrError } from '../errors';
import { latestCleanPoint } from '../replica/cleanPoint';
import { RecoveryPoint } from '../state/recoveryPoints';

/**
 * Which recovery point a failover restores, as ASR offers it: the latest processed point (lowest RPO here, since
 * the merge processes every log as it arrives), the latest app-consistent one, or a specific point by id; and,
 * beyond ASR, the last clean point: the newest before the latest run of points flagged as suspicious churn
 * (shared/replica/cleanPoint.ts), which is the latest point when none is flagged.
 */
export type RecoveryPointChoice =
    | { type: 'Latest' }
    | { type: 'LatestApplicationConsistent' }
    | { type: 'LatestClean' }
    | { type: 'Custom'; recoveryPointId: string };

export const RECOVERY_POINT_CHOICE_TYPES = ['Latest', 'LatestApplicationConsistent', 'LatestClean', 'Custom'] as const;
const TYPES = RECOVERY_POINT_CHOICE_TYPES;

/** Parses the `recoveryPoint` of a request body; VALIDATION_FAILED naming the field and value. Absent → Latest. */
export function parseRecoveryPointChoice(value: unknown): RecoveryPointChoice {
    if (value === undefined) return { type: 'Latest' };
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new HvrError('VALIDATION_FAILED', `recoveryPoint must be an object; got ${JSON.stringify(value)}.`);
    }
    const v = value as Record<string, unknown>;
    if (!TYPES.includes(v.type as (typeof TYPES)[number])) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `recoveryPoint.type must be one of ${TYPES.join(', ')}; got ${JSON.stringify(v.type)}.`,
        );
    }
    if (v.type === 'Custom') {
        if (typeof v.recoveryPointId !== 'string' || v.recoveryPointId === '' || v.recoveryPointId.length > 300) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `recoveryPoint.recoveryPointId must name a recovery point of the VM; got ${JSON.stringify(v.recoveryPointId)}.`,
            );
        }
        return { type: 'Custom', recoveryPointId: v.recoveryPointId };
    }
    return { type: v.type as 'Latest' | 'LatestApplicationConsistent' | 'LatestClean' };
}

/**
 * Picks the point from the VM's points (any order). PREREQUISITE_FAILED when there is none to pick: a VM
 * without a point cannot fail over (initial replication has not finished, or retention removed the one named).
 */
export function chooseRecoveryPoint(points: readonly RecoveryPoint[], choice: RecoveryPointChoice): RecoveryPoint {
    const newestFirst = [...points].sort(
        (a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt) || b.cycleId.localeCompare(a.cycleId),
    );
    let chosen: RecoveryPoint | undefined;
    switch (choice.type) {
        case 'Latest':
            chosen = newestFirst[0];
            break;
        case 'LatestApplicationConsistent':
            chosen = newestFirst.find((p) => p.consistency === 'AppConsistent');
            break;
        case 'LatestClean':
            chosen = latestCleanPoint(newestFirst);
            break;
        case 'Custom':
            chosen = newestFirst.find((p) => p.recoveryPointId === choice.recoveryPointId);
            break;
    }
    if (!chosen) {
        const vmId = points[0]?.vmId;
        const what =
            choice.type === 'Custom'
                ? `recovery point ${choice.recoveryPointId} does not exist (pruned by retention, or another VM's)`
                : choice.type === 'LatestApplicationConsistent'
                  ? 'there is no app-consistent recovery point'
                  : choice.type === 'LatestClean' && points.length > 0
                    ? 'every recovery point is suspicious churn or after it: there is no clean point left'
                    : 'there is no recovery point yet (initial replication has not completed a cycle)';
        throw new HvrError('PREREQUISITE_FAILED', `Cannot fail over${vmId ? ` VM ${vmId}` : ''}: ${what}.`, {
            choice,
        });
    }
    return chosen;
}
