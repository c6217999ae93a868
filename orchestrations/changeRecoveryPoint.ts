import * as df from 'durable-functions';
import { allowedOperationsLine } from '../shared/failover/allowedOperations';
import {
    planPointChange,
    PointChangePlan,
    PointChangeRequest,
    replaceFailoverVmDisks,
    rollBackPointChange,
} from '../shared/failover/changePoint';
import { Failure } from '../shared/retry';
import { PROTECTION_STATES } from '../shared/state/protectedItems';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { COPY_POLL_MS, drillCopyStatusActivity, recordStep, startDrillCopiesActivity } from './testFailover';

/**
 * Change recovery point of a failed-over VM before commit (instance `changerecoverypoint:{vmId}`, job "Change
 * recovery point", ASR's applyRecoveryPoint): the other point's disks are prepared while the VM keeps running
 * from its current point, then the VM is rebuilt on them. A change that fails is rolled back; the VM then still
 * runs from the point it had.
 */
export const CHANGE_RECOVERY_POINT = 'changeRecoveryPoint';

export const CHANGE_RECOVERY_POINT_TASKS = [
    'Prerequisites check for change recovery point',
    'Preparing the failover disks',
    'Replacing the disks of the virtual machine',
] as const;

export type ChangeRecoveryPointInput = Omit<PointChangeRequest, 'at'>;

export const planPointChangeActivity = df.app.activity('planPointChange', {
    handler: (input: unknown) => planPointChange(input as PointChangeRequest),
});
export const replaceFailoverVmDisksActivity = df.app.activity('replaceFailoverVmDisks', {
    handler: (input: unknown) => replaceFailoverVmDisks(input as PointChangePlan),
});
export const rollBackPointChangeActivity = df.app.activity('rollBackPointChange', {
    handler: (input: unknown) => rollBackPointChange(input as { plan: PointChangePlan; vmTouched: boolean }),
});

export function* changeRecoveryPointOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { result: 'Changed' | 'Failed'; recoveryPointId: string; error?: unknown }, unknown> {
    const input = context.df.getInput<ChangeRecoveryPointInput>();
    const { vmId, jobId, drillId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const [prerequisites, disks, replacing] = CHANGE_RECOVERY_POINT_TASKS;
    context.df.setCustomStatus({ stage: 'ChangeRecoveryPointInProgress', jobId, drillId });
    yield* recordStep(context, {
        vmId,
        jobId,
        item: {
            protectionState: 'ChangeRecoveryPointInProgress',
            protectionStateDescription: PROTECTION_STATES.ChangeRecoveryPointInProgress,
            currentJobId: jobId,
        },
        jobChanges: [{ type: 'taskStarted', task: prerequisites, at: now() }],
    });
    const planned = yield* callWithRetrySchedule<PointChangePlan>(context, planPointChangeActivity, {
        ...input,
        at: now(),
    });
    if (!planned.ok) return yield* fail(prerequisites, planned, undefined);
    const plan = planned.value;
    const from = plan.previous.recoveryPointId;
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: prerequisites, at: now() },
            {
                type: 'taskStarted',
                task: disks,
                at: now(),
                detail: `Recovery point ${plan.recoveryPointId} (captured ${plan.capturedAt}); the VM runs from ${from} meanwhile`,
            },
        ],
    });
    const started = yield* callWithRetrySchedule<null>(context, startDrillCopiesActivity, plan);
    if (!started.ok) return yield* fail(disks, started, { plan, vmTouched: false });
    for (;;) {
        const status = yield* callWithRetrySchedule<{ done: boolean }>(context, drillCopyStatusActivity, plan);
        if (!status.ok) return yield* fail(disks, status, { plan, vmTouched: false });
        if (status.value.done) break;
        yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + COPY_POLL_MS));
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            {
                type: 'taskSucceeded',
                task: disks,
                at: now(),
                detail: `Recovery point ${plan.recoveryPointId} (captured ${plan.capturedAt})`,
            },
            { type: 'taskStarted', task: replacing, at: now() },
        ],
    });
    const replaced = yield* callWithRetrySchedule<{ deleted: string[] }>(context, replaceFailoverVmDisksActivity, plan);
    if (!replaced.ok) return yield* fail(replacing, replaced, { plan, vmTouched: true });
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            {
                type: 'taskSucceeded',
                task: replacing,
                at: now(),
                detail: `The VM runs from recovery point ${plan.recoveryPointId}; the disks of ${from} were deleted`,
            },
            { type: 'jobSucceeded', at: now() },
        ],
        item: {
            protectionState: 'FailedOver',
            protectionStateDescription: PROTECTION_STATES.FailedOver,
            failoverRecoveryPointId: plan.recoveryPointId,
        },
        event: {
            eventId: `${jobId}:changed`,
            kind: 'RecoveryPointChanged',
            severity: 'Warning',
            message: `The failed-over VM now runs from recovery point ${plan.recoveryPointId} (was ${from}); commit when satisfied.`,
        },
    });
    context.df.setCustomStatus({ stage: 'FailedOver', jobId, drillId, recoveryPointId: plan.recoveryPointId });
    return { result: 'Changed', recoveryPointId: plan.recoveryPointId };

    function* fail(
        task: string,
        failure: Failure,
        rollback: { plan: PointChangePlan; vmTouched: boolean } | undefined,
    ): Generator<df.Task, { result: 'Failed'; recoveryPointId: string; error: unknown }, unknown> {
        let restored = true;
        let cleanupError: Failure | undefined;
        let current = rollback?.plan.previous.recoveryPointId;
        if (rollback) {
            const undone = yield* callWithRetrySchedule<{ inUse: string }>(
                context,
                rollBackPointChangeActivity,
                rollback,
            );
            restored = undone.ok;
            if (undone.ok) current = undone.value.inUse;
            else cleanupError = undone;
        }
        const state = { protectionState: 'FailedOver' as const, testFailoverState: 'None' };
        const outcome = !restored
            ? `Rolling back failed too (${cleanupError?.code}: ${cleanupError?.message}); check the VM and change the point again.`
            : current !== undefined && current === rollback?.plan.recoveryPointId
              ? `The VM runs from ${current}; some disks or blobs of ${rollback.plan.previous.recoveryPointId} may be left (listed on the drill); ${allowedOperationsLine(state)}.`
              : `The VM still runs from ${current ?? 'its recovery point'}; ${allowedOperationsLine(state)}.`;
        const error = { code: failure.code, message: `${failure.message} ${outcome}` };
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: { ...failure, message: error.message } }],
            item: {
                protectionState: 'FailedOver',
                protectionStateDescription: PROTECTION_STATES.FailedOver,
                ...(restored && current !== undefined ? { failoverRecoveryPointId: current } : {}),
            },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'ChangeRecoveryPointFailed',
                severity: restored ? 'Warning' : 'Critical',
                message: `${task} failed: ${error.code}: ${error.message}`,
            },
        });
        context.df.setCustomStatus({ stage: 'Failed', jobId, drillId, error });
        return { result: 'Failed', recoveryPointId: current ?? '', error };
    }
}

df.app.orchestration(CHANGE_RECOVERY_POINT, changeRecoveryPointOrchestrator);
