import type { HealthReason } from '../health';
import type { RecoveryPoint } from '../state/recoveryPoints';

/** How long after its capture a suspicious point keeps the VM's health at Critical (SuspiciousChurn). */
export const SUSPICIOUS_CHURN_REASON_DAYS = 7;

/** The newest suspicious point of a VM, as recorded on its protected item when the merge flags one. */
export interface SuspiciousChurnMark {
    recoveryPointId: string;
    capturedAt: string;
    score: number;
}

function newestFirst(points: readonly RecoveryPoint[]): RecoveryPoint[] {
    return [...points].sort(
        (a, b) => Date.parse(b.capturedAt) - Date.parse(a.capturedAt) || b.cycleId.localeCompare(a.cycleId),
    );
}

/**
 * The last clean point: the newest point before the latest run of suspicious points (consecutive flagged
 * points, newest first from the newest flagged one). Points after an attack are not clean either — the disks are
 * encrypted by then, even when their cycles look calm again — so the choice goes back past the whole run. No
 * suspicious point: the newest point. Undefined when every point is suspicious or after one.
 */
export function latestCleanPoint(points: readonly RecoveryPoint[]): RecoveryPoint | undefined {
    const ordered = newestFirst(points);
    const newestSuspicious = ordered.findIndex((p) => p.churn?.suspicious);
    if (newestSuspicious < 0) return ordered[0];
    let i = newestSuspicious;
    while (i < ordered.length && ordered[i]!.churn?.suspicious) i++;
    return ordered[i];
}

/** The health reason a recent suspicious point raises (Critical: an operator must look before anything else). */
export function suspiciousChurnReason(mark: SuspiciousChurnMark | undefined, now: Date): HealthReason | undefined {
    if (!mark) return undefined;
    const age = now.getTime() - Date.parse(mark.capturedAt);
    if (!(age < SUSPICIOUS_CHURN_REASON_DAYS * 24 * 3600_000)) return undefined;
    return {
        code: 'SuspiciousChurn',
        severity: 'Critical',
        message:
            `Recovery point ${mark.recoveryPointId} (captured ${mark.capturedAt}) looks like mass encryption ` +
            `(churn score ${mark.score}): a large share of a disk was rewritten with random-looking data. ` +
            'Fail over or test to the last clean point ({ "type": "LatestClean" }) to check.',
    };
}
