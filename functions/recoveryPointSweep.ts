import { app, InvocationContext, Timer } from '@azure/functions';
import { ensureErrorType } from '../shared/errors';
import { ports } from '../shared/ports';
import { DEFAULT_RETENTION } from '../shared/replica/recoveryPoints';
import { sweepRecoveryPoints, SweepResult } from '../shared/replica/pruneSweep';
import { retentionOfVm, snapshotImmutabilityFromEnv } from '../shared/replica/vmRetention';
import { listProtectedItems, StateScope, stateScope } from '../shared/state/protectedItems';

/**
 * Applies every VM's retention: the merge prunes after each new point, but thinning (hourly → daily → weekly)
 * must happen while no cycle arrives too, and a sweep cut off part-way is finished by the next one. One VM's
 * failure does not stop the others; it is logged and retried at the next tick.
 */
export async function sweepAllRecoveryPoints(
    scope: StateScope,
    log: (message: string) => void,
): Promise<SweepResult[]> {
    const deps = { scope, clock: ports().clock, immutability: snapshotImmutabilityFromEnv(), log };
    const results: SweepResult[] = [];
    for (const item of await listProtectedItems(scope)) {
        try {
            const retention = (await retentionOfVm(scope, item.vmId)) ?? DEFAULT_RETENTION;
            results.push(await sweepRecoveryPoints(deps, item.vmId, retention));
        } catch (err) {
            log(
                `recovery point sweep: VM ${item.vmId} failed and is retried next time: ${ensureErrorType(err).message}`,
            );
        }
    }
    return results;
}

export async function recoveryPointSweep(_timer: Timer, context: InvocationContext): Promise<void> {
    const results = await sweepAllRecoveryPoints(stateScope(), (m) => context.log(m));
    for (const r of results) {
        if (r.removed.length === 0 && r.refused.length === 0) continue;
        context.log(
            `recovery point sweep: VM ${r.vmId}: ${r.removed.length} removed, ${r.protectedIds.length} protected, ` +
                `${r.refused.length} refused by storage`,
        );
    }
}

app.timer('recoveryPointSweep', { schedule: '0 7,22,37,52 * * * *', handler: recoveryPointSweep });
