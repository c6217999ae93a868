import { HvrError } from '../errors';
import { allowedOperations, operationNotAllowed } from '../failover/allowedOperations';
import { TEST_FAILOVER_STATES } from '../failover/states';
import { Outcome, outcomeOf } from '../retry';
import { getDrill } from '../state/drills';
import { createJob, getJob, JobKind, newJob } from '../state/jobs';
import { PROTECTION_STATES, ProtectedItem, stateScope, updateProtectedItem } from '../state/protectedItems';
import { PlanOperation } from './recoveryPlan';

/**
 * One VM's part in a plan's operation, as activity bodies: claim the protected item for the per-VM operation
 * (the same rule and the same one-write claim as the failover API: `allowedOperations`), create the per-VM job
 * the per-VM orchestration reports on, and say what that orchestration needs. Idempotent: a retried claim that
 * finds its own claim in place goes on.
 */

/** The operations a plan runs through a per-VM orchestration today (Failback has none yet). */
export type PlanVmOperation = Exclude<PlanOperation, 'Failback'>;

/** The per-VM job kind of each operation (the plan's job has the same kind). */
export const PLAN_JOB_KINDS: Record<PlanVmOperation, JobKind> = {
    TestFailover: 'TestFailover',
    TestFailoverCleanup: 'TestFailoverCleanup',
    PlannedFailover: 'PlannedFailover',
    UnplannedFailover: 'UnplannedFailover',
    Commit: 'CommitFailover',
};

export interface PlanVmRequest {
    operation: PlanVmOperation;
    planName: string;
    planJobId: string;
    vmId: string;
    /** The per-VM job, made by the claim: its id comes from the plan's orchestration (deterministic). */
    vmJobId: string;
    vmTasks: readonly string[];
    vmInstanceId: string;
    at: string;
}

/** What the per-VM orchestration gets, or why the VM has nothing to do. */
export type PlanVmStart =
    | { start: true; drillId: string; siteId: string; recoveryPointId?: string; drillCompleted?: boolean }
    | { start: false; reason: string };

function claimChanges(
    operation: PlanVmOperation,
    vmJobId: string,
    drillId: string,
): Partial<ProtectedItem> & { currentJobId: string } {
    switch (operation) {
        case 'TestFailover':
            return {
                testFailoverState: 'TestFailoverInProgress',
                testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverInProgress,
                currentDrillId: drillId,
                currentJobId: vmJobId,
            };
        case 'TestFailoverCleanup':
            return {
                testFailoverState: 'TestFailoverCleanupInProgress',
                testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverCleanupInProgress,
                currentJobId: vmJobId,
            };
        case 'PlannedFailover':
        case 'UnplannedFailover': {
            const state = operation === 'PlannedFailover' ? 'PlannedFailoverInProgress' : 'UnplannedFailoverInProgress';
            return {
                protectionState: state,
                protectionStateDescription: PROTECTION_STATES[state],
                currentJobId: vmJobId,
                currentDrillId: drillId,
            };
        }
        case 'Commit':
            return {
                protectionState: 'CommittingFailover',
                protectionStateDescription: PROTECTION_STATES.CommittingFailover,
                currentJobId: vmJobId,
            };
    }
}

/** The item operation that must be allowed for the plan's operation (ASR's names). */
const ITEM_OPERATION = {
    TestFailover: 'TestFailover',
    TestFailoverCleanup: 'TestFailoverCleanup',
    PlannedFailover: 'PlannedFailover',
    UnplannedFailover: 'UnplannedFailover',
    Commit: 'Commit',
} as const;

/** A VM with nothing to do for this operation is skipped, not failed (a cleanup where no drill ran). */
function nothingToDo(operation: PlanVmOperation, item: ProtectedItem): string | undefined {
    if (operation === 'TestFailoverCleanup' && (item.testFailoverState ?? 'None') === 'None') {
        return 'No test failover to clean up.';
    }
    return undefined;
}

/** Claims the item and creates the per-VM job; CONFLICT (non-recoverable) naming the allowed operations. */
export async function startPlanVm(request: PlanVmRequest): Promise<Outcome<PlanVmStart>> {
    return outcomeOf(async () => {
        const { operation, vmId, vmJobId } = request;
        const scope = stateScope();
        const drillId = operation === 'TestFailover' ? `tfo-${vmJobId}` : `fo-${vmJobId}`;
        const claim = claimChanges(operation, vmJobId, drillId);
        let skip: string | undefined;
        let before: ProtectedItem | undefined;
        const { item, changed } = await updateProtectedItem(
            scope,
            vmId,
            (current) => {
                before = current;
                skip = nothingToDo(operation, current);
                if (skip !== undefined) return undefined;
                if (current.currentJobId === vmJobId) return undefined; // our own claim, from an earlier attempt
                if (!allowedOperations(current).includes(ITEM_OPERATION[operation])) return undefined;
                if (operation === 'Commit' && (!current.currentDrillId || !current.failoverRecoveryPointId)) {
                    return undefined;
                }
                return claim;
            },
            request.at,
        );
        if (skip !== undefined) return { start: false, reason: skip };
        if (!changed && item.currentJobId !== vmJobId) {
            throw operationNotAllowed(item, `the recovery plan ${request.planName} cannot run ${operation} on it`);
        }
        const claimed = before ?? item;
        const kind = PLAN_JOB_KINDS[operation];
        await createJob(scope, newJob(vmJobId, kind, vmId, request.vmTasks, request.at, request.vmInstanceId));
        switch (operation) {
            case 'TestFailover':
            case 'PlannedFailover':
            case 'UnplannedFailover':
                return { start: true, drillId, siteId: item.siteId };
            case 'TestFailoverCleanup': {
                const current = item.currentDrillId;
                const drill = current ? await getDrill(scope, vmId, current) : undefined;
                if (!current || !drill) {
                    throw new HvrError(
                        'CONFLICT',
                        `VM ${vmId} has no drill to clean up (item names ${current ?? 'none'}).`,
                    );
                }
                return {
                    start: true,
                    drillId: current,
                    siteId: item.siteId,
                    drillCompleted: drill.completedAt !== undefined && drill.error === undefined,
                };
            }
            case 'Commit':
                return {
                    start: true,
                    drillId: claimed.currentDrillId ?? '',
                    siteId: item.siteId,
                    recoveryPointId: claimed.failoverRecoveryPointId ?? '',
                };
        }
    });
}

/** The first error of a per-VM job, for the plan's VM task: what failed, in which task of the VM's job. */
export async function planVmFailure(input: {
    vmJobId: string;
}): Promise<{ code: string; message: string; recoverable: boolean }> {
    const job = await getJob(stateScope(), input.vmJobId);
    const error = job?.errors[0];
    if (!error) {
        return { code: 'INTERNAL', message: `job ${input.vmJobId} ended without an error recorded`, recoverable: true };
    }
    return {
        code: error.code,
        message: `${error.task ? `${error.task}: ` : ''}${error.message}`,
        recoverable: error.recoverable,
    };
}
