import * as df from 'durable-functions';
import { allowedOperationsLine } from '../shared/failover/allowedOperations';
import { dropOtherRecoveryPoints, DrillRequest } from '../shared/failover/drillSteps';
import { failoverRpoSeconds } from '../shared/failover/plannedFailover';
import { Failure } from '../shared/retry';
import { PROTECTION_STATES } from '../shared/state/protectedItems';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { RECORD_RETRY, sendProviderEventActivity, stopReplicationEvent } from './lifecycleActivities';
import { stopLifecycleInstancesActivity } from './disableProtection';
import { cleanUpDrillActivity, recordDrillActivity, recordStep, runDrill } from './testFailover';
import { PLANNED_FAILOVER_TASKS, shutDownAndSynchronize } from './plannedFailover';

/**
 * Planned and unplanned failover of one VM to Azure (instance `failover:{vmId}`), and its commit
 * (`commitfailover:{vmId}`). Failover stops replication (the monitor, and StopReplication to the provider), then
 * builds the VM from the chosen recovery point in the mapped recovery network. Commit drops the other recovery
 * points: the failover can no longer change point, as in ASR.
 */
export const FAILOVER = 'failover';
export const COMMIT_FAILOVER = 'commitFailover';

export const FAILOVER_TASKS = [
    'Prerequisites check for failover',
    'Stopping replication',
    'Preparing the failover disks',
    'Creating the virtual machine in Azure',
] as const;
export const COMMIT_TASKS = ['Dropping the other recovery points'] as const;

/** Unplanned failover happens when the site may be gone: telling its provider must not hold the failover up. */
export const UNPLANNED_STOP_GIVE_UP_MS = 15 * 60_000;

/** A planned failover's wait for the shutdown when the input does not say (PLANNED_FAILOVER_SHUTDOWN_TIMEOUT_SECONDS). */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 900;

export type FailoverInput = Omit<DrillRequest, 'at'> & {
    kind: 'PlannedFailover' | 'UnplannedFailover';
    siteId: string;
    /** Planned: read from the setting when the failover is requested, so replays see the same value. */
    shutdownTimeoutSeconds?: number;
};

/** The job's tasks for each kind of failover. */
export function failoverTasks(kind: 'PlannedFailover' | 'UnplannedFailover'): readonly string[] {
    return kind === 'PlannedFailover' ? PLANNED_FAILOVER_TASKS : FAILOVER_TASKS;
}

export const dropOtherRecoveryPointsActivity = df.app.activity('dropOtherRecoveryPoints', {
    handler: (input: unknown) => dropOtherRecoveryPoints(input as { vmId: string; keepRecoveryPointId: string }),
});

export function* failoverOrchestrator(
    context: df.OrchestrationContext,
): Generator<
    df.Task,
    { result: 'FailedOver' | 'Failed'; virtualMachineId?: string; rpoSeconds?: number; error?: unknown },
    unknown
> {
    const input = context.df.getInput<FailoverInput>();
    const { vmId, jobId, drillId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const startedAt = now();
    const planned = input.kind === 'PlannedFailover';
    const [prerequisites, stopping, disks, resources] = FAILOVER_TASKS;
    const inProgress = planned ? 'PlannedFailoverInProgress' : 'UnplannedFailoverInProgress';
    context.df.setCustomStatus({ stage: inProgress, jobId, drillId });
    yield* recordStep(context, {
        vmId,
        jobId,
        item: {
            protectionState: inProgress,
            protectionStateDescription: PROTECTION_STATES[inProgress],
            currentJobId: jobId,
        },
        jobChanges: planned ? [] : [{ type: 'taskStarted', task: stopping, at: now() }],
    });

    // Planned: the provider shuts the VM down and ships its final cycle while replication still runs.
    let recoveryPoint = input.recoveryPoint;
    let lastWriteAt = startedAt;
    if (planned) {
        const sync = yield* shutDownAndSynchronize(
            context,
            {
                vmId,
                siteId: input.siteId,
                jobId,
                drillId,
                shutdownTimeoutSeconds: input.shutdownTimeoutSeconds ?? DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
            },
            { ...input, recoveryPoint: { type: 'Latest' }, at: now() },
        );
        if (!sync.ok) return yield* giveUpBeforeStopping(sync.task, sync.failure);
        recoveryPoint = { type: 'Custom', recoveryPointId: sync.recoveryPointId };
        lastWriteAt = sync.shutDownAt;
        yield* recordStep(context, { vmId, jobId, jobChanges: [{ type: 'taskStarted', task: stopping, at: now() }] });
    }

    // Replication stops first, so no cycle lands while the VM is rebuilt in Azure.
    const stopped = yield* callWithRetrySchedule<unknown>(context, stopLifecycleInstancesActivity, {
        vmId,
        jobId,
        at: now(),
    });
    const told = stopped.ok
        ? yield* callWithRetrySchedule<null>(
              context,
              sendProviderEventActivity,
              stopReplicationEvent(
                  input.siteId,
                  vmId,
                  jobId,
                  `${planned ? 'Planned' : 'Unplanned'} failover to Azure (job ${jobId}).`,
              ),
              planned ? {} : { giveUpAfterMs: UNPLANNED_STOP_GIVE_UP_MS },
          )
        : stopped;
    // A planned failover needs the site: it fails without it. An unplanned one goes on with a warning.
    if (!told.ok && (planned || !stopped.ok)) {
        return yield* fail(stopping, told, false);
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            told.ok
                ? { type: 'taskSucceeded', task: stopping, at: now() }
                : {
                      type: 'taskDetail',
                      task: stopping,
                      detail: `The provider was not told (${told.code}); it will be refused from now on.`,
                  },
            ...(told.ok ? [] : [{ type: 'taskSucceeded' as const, task: stopping, at: now() }]),
        ],
    });

    const run = yield* runDrill(
        context,
        { ...input, recoveryPoint, at: now() },
        planned ? { disks, resources } : { prerequisites, disks, resources },
    );
    if (!run.ok) return yield* fail(run.task, run.failure, run.planned);
    const rpoSeconds = failoverRpoSeconds(run.plan.capturedAt, lastWriteAt);
    // The drill first: once the job reads Succeeded, the drill row is final (its point and RPO).
    yield recordDrillActivity({
        vmId,
        drillId,
        changes: {
            state: 'Completed',
            completedAt: now(),
            virtualMachineId: run.virtualMachineId,
            rpoSeconds,
            recoveryPointHistory: [{ recoveryPointId: run.plan.recoveryPointId, appliedAt: now(), jobId }],
        },
    }).withRetry(RECORD_RETRY);
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [{ type: 'jobSucceeded', at: now() }],
        item: {
            protectionState: 'FailedOver',
            protectionStateDescription: PROTECTION_STATES.FailedOver,
            failoverRecoveryPointId: run.plan.recoveryPointId,
            lastSuccessfulFailoverTime: now(),
        },
        event: {
            eventId: `${jobId}:failedover`,
            kind: 'FailedOver',
            severity: 'Warning',
            message:
                `VM failed over to ${run.virtualMachineId} from recovery point ${run.plan.recoveryPointId} ` +
                `(RPO ${rpoSeconds} s); change the recovery point or commit when satisfied.`,
        },
    });
    context.df.setCustomStatus({ stage: 'FailedOver', jobId, drillId, rpoSeconds });
    return { result: 'FailedOver', virtualMachineId: run.virtualMachineId, rpoSeconds };

    /** Before replication stopped (planned failover): the VM stays protected and nothing exists in Azure. */
    function* giveUpBeforeStopping(
        task: string,
        failure: Failure,
    ): Generator<df.Task, { result: 'Failed'; error: unknown }, unknown> {
        const error = { code: failure.code, message: failure.message };
        const still = { protectionState: 'Protected' as const, testFailoverState: 'None' };
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: failure }],
            item: { protectionState: 'Protected', protectionStateDescription: PROTECTION_STATES.Protected },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'PlannedFailoverFailed',
                severity: 'Warning',
                message: `${task} failed: ${error.code}: ${error.message} Nothing was created in Azure; ${allowedOperationsLine(still)}.`,
            },
        });
        context.df.setCustomStatus({ stage: 'Failed', jobId, drillId, error });
        return { result: 'Failed', error };
    }

    function* fail(
        task: string,
        failure: Failure,
        planned: boolean,
    ): Generator<df.Task, { result: 'Failed'; error: unknown }, unknown> {
        let cleanedUp = !planned;
        if (planned) {
            const cleanup = yield* callWithRetrySchedule<unknown>(context, cleanUpDrillActivity, { vmId, drillId });
            cleanedUp = cleanup.ok;
        }
        const error = { code: failure.code, message: failure.message };
        yield* recordStep(context, {
            vmId,
            jobId,
            drillId: planned ? drillId : undefined,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: failure }],
            item: { protectionState: 'FailoverFailed', protectionStateDescription: PROTECTION_STATES.FailoverFailed },
            drill: {
                state: 'Failed',
                completedAt: now(),
                error,
                cleanedUp,
                ...(cleanedUp ? { cleanedUpAt: now() } : {}),
            },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'FailoverFailed',
                severity: 'Critical',
                message: `${task} failed: ${error.code}: ${error.message}`,
            },
        });
        context.df.setCustomStatus({ stage: 'Failed', jobId, drillId, error });
        return { result: 'Failed', error };
    }
}

df.app.orchestration(FAILOVER, failoverOrchestrator);

export interface CommitFailoverInput {
    vmId: string;
    drillId: string;
    jobId: string;
    recoveryPointId: string;
}

export function* commitFailoverOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { result: 'Committed' | 'Failed'; dropped?: string[] }, unknown> {
    const { vmId, drillId, jobId, recoveryPointId } = context.df.getInput<CommitFailoverInput>();
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const [task] = COMMIT_TASKS;
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [{ type: 'taskStarted', task, at: now() }],
        item: {
            protectionState: 'CommittingFailover',
            protectionStateDescription: PROTECTION_STATES.CommittingFailover,
            currentJobId: jobId,
        },
    });
    const dropped = yield* callWithRetrySchedule<{ dropped: string[] }>(context, dropOtherRecoveryPointsActivity, {
        vmId,
        keepRecoveryPointId: recoveryPointId,
    });
    if (!dropped.ok) {
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: dropped }],
            // The failover itself stands; the commit can be run again.
            item: { protectionState: 'FailedOver', protectionStateDescription: PROTECTION_STATES.FailedOver },
        });
        return { result: 'Failed' };
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        drillId,
        jobChanges: [
            { type: 'taskSucceeded', task, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        item: { protectionState: 'FailoverCommitted', protectionStateDescription: PROTECTION_STATES.FailoverCommitted },
        drill: { state: 'Committed' },
        event: {
            eventId: `${jobId}:committed`,
            kind: 'FailoverCommitted',
            severity: 'Info',
            message: `Failover committed to ${recoveryPointId}; ${dropped.value.dropped.length} other recovery points dropped.`,
        },
    });
    return { result: 'Committed', dropped: dropped.value.dropped };
}

df.app.orchestration(COMMIT_FAILOVER, commitFailoverOrchestrator);
