import { HvrError } from '../errors';
import { FailoverShutdownEvent } from '../lifecycle/instances';
import { Outcome, outcomeOf } from '../retry';
import { getProtectedItem, stateScope } from '../state/protectedItems';
import { getRecoveryPoint } from '../state/recoveryPoints';

/**
 * The planned failover's "Synchronizing the latest data" step: the provider shipped the VM's final cycle after
 * the shutdown; the merge applies its logs like any cycle's and records the cycle's recovery point. This looks
 * for that point and checks it holds every final log, so the failover restores exactly the disks at shutdown.
 */

export type FinalPointStatus =
    { ready: false; detail: string } | { ready: true; recoveryPointId: string; capturedAt: string };

/** Whether the final cycle's recovery point exists and covers every log the provider listed. */
export async function finalRecoveryPointStatus(
    input: Pick<FailoverShutdownEvent, 'vmId' | 'cycleId' | 'logs'>,
): Promise<Outcome<FinalPointStatus>> {
    return outcomeOf(async () => {
        const scope = stateScope();
        const item = await getProtectedItem(scope, input.vmId);
        if (!item) throw new HvrError('NOT_FOUND', `VM ${input.vmId} is not protected.`);
        const disks = item.disks.map((d) => d.diskId).sort();
        const shipped = [...new Set(input.logs.map((l) => l.diskId))].sort();
        if (shipped.join('\n') !== disks.join('\n')) {
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `The final cycle ${input.cycleId} of VM ${input.vmId} has logs for disks ${shipped.join(', ') || 'none'}; ` +
                    `the VM's disks are ${disks.join(', ')}. The provider must ship one log per disk.`,
            );
        }
        const point = await getRecoveryPoint(scope, input.vmId, input.cycleId);
        if (!point) return { ready: false, detail: `waiting for the recovery point of cycle ${input.cycleId}` };
        const behind = input.logs.filter((l) => (point.disks[l.diskId]?.sequence ?? 0) < l.sequence);
        if (behind.length > 0) {
            // A point of that cycle without the listed log: the provider reused a cycle id. It is not the final data.
            throw new HvrError(
                'PREREQUISITE_FAILED',
                `Recovery point ${point.recoveryPointId} does not hold the final log of ${behind
                    .map((l) => `${l.diskId} (#${l.sequence})`)
                    .join(', ')}; the final cycle needs a cycle id of its own.`,
            );
        }
        return { ready: true, recoveryPointId: point.recoveryPointId, capturedAt: point.capturedAt };
    });
}

/**
 * Data lost by failing over to a point, in seconds: what the VM wrote after the point was captured. After a
 * planned failover the VM was off from `shutDownAt` and the point was captured after it, so nothing is lost.
 */
export function failoverRpoSeconds(pointCapturedAt: string, lastWriteAt: string): number {
    return Math.max(0, Math.floor((Date.parse(lastWriteAt) - Date.parse(pointCapturedAt)) / 1000));
}
