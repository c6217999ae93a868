import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { instanceIds } from '../shared/lifecycle/instances';
import { Failure, Outcome, outcomeOf } from '../shared/retry';
import { getJob, updateJob } from '../shared/state/jobs';
import { getProtectedItem, PROTECTION_STATES } from '../shared/state/protectedItems';
import { ports } from '../shared/ports';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import {
    LifecycleRecord,
    RECORD_RETRY,
    recordLifecycleActivity,
    sendProviderEventActivity,
    stopReplicationEvent,
} from './lifecycleActivities';

/**
 * Disable protection of one VM (instance `disable:{vmId}`): stop the monitor (and an enable still running),
 * tell the provider to stop, remove the replica disks and recovery points unless asked to keep them, and remove
 * the protected item. Jobs and events stay for the record.
 */
export const DISABLE_PROTECTION = 'disableProtection';

export interface DisableProtectionInput {
    vmId: string;
    siteId: string;
    diskIds: string[];
    jobId: string;
    /** Keep the replica disks and recovery points (e.g. to create a VM from them later). */
    keepReplica: boolean;
}

export function disableProtectionTasks(keepReplica: boolean): [string, string, string, string] {
    return [
        'Stopping the replication monitor',
        'Stopping replication on the provider',
        keepReplica ? 'Keeping replica disks and recovery points' : 'Removing replica disks and recovery points',
        'Removing the protected item',
    ];
}

/** Giving up on telling the provider does not block the disable: it ends with a warning instead. */
export const STOP_REPLICATION_GIVE_UP_MS = 2 * 3600_000;

// ---- activities -------------------------------------------------------------------------------------------

/**
 * Terminates `monitor:{vmId}` and `protect:{vmId}` if they run, and cancels the job the enable was running.
 * `at` is the orchestrator's time, so a replay writes the same thing.
 */
export async function stopLifecycleInstances(
    input: { vmId: string; jobId: string; at: string },
    context: InvocationContext,
): Promise<Outcome<{ monitorStopped: boolean; enableStopped: boolean }>> {
    return outcomeOf(async () => {
        const deps = ports();
        const reason = `Protection is being disabled (job ${input.jobId}).`;
        const monitorStopped = await deps.orchestrations.terminateIfRunning(
            context,
            instanceIds.replicationMonitor(input.vmId),
            reason,
        );
        const enableStopped = await deps.orchestrations.terminateIfRunning(
            context,
            instanceIds.enableProtection(input.vmId),
            reason,
        );
        const scope = deps.state();
        const item = await getProtectedItem(scope, input.vmId);
        const previousJobId = item?.currentJobId;
        if (enableStopped && previousJobId !== undefined) {
            // The stopped enable's initial replication deadline, if it was waiting on one: its timer goes too.
            await deps.orchestrations.terminateIfRunning(
                context,
                instanceIds.initialReplicationDeadline(input.vmId, previousJobId),
                reason,
            );
        }
        if (previousJobId !== undefined && previousJobId !== input.jobId) {
            const previous = await getJob(scope, previousJobId);
            if (previous && (previous.state === 'InProgress' || previous.state === 'NotStarted')) {
                await updateJob(scope, previousJobId, [{ type: 'jobCancelled', at: input.at, reason }]);
            }
        }
        return { monitorStopped, enableStopped };
    });
}

export const stopLifecycleInstancesActivity = df.app.activity('stopLifecycleInstances', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) =>
        stopLifecycleInstances(input as { vmId: string; jobId: string; at: string }, context),
});

export async function removeReplica(input: { vmId: string; diskIds: string[] }): Promise<Outcome<null>> {
    return outcomeOf(async () => {
        await ports().replicas().removeReplica(input);
        return null;
    });
}

export const removeReplicaActivity = df.app.activity('removeReplica', {
    handler: (input: unknown) => removeReplica(input as { vmId: string; diskIds: string[] }),
});

// ---- orchestrator -----------------------------------------------------------------------------------------

export interface DisableProtectionResult {
    result: 'Disabled' | 'Failed';
    jobId: string;
    warnings: string[];
    error?: { code: string; message: string };
}

export function* disableProtectionOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, DisableProtectionResult, unknown> {
    const input = context.df.getInput<DisableProtectionInput>();
    const { vmId, jobId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const record = (r: Omit<LifecycleRecord, 'vmId' | 'at'>): df.Task =>
        recordLifecycleActivity({ vmId, at: now(), ...r }).withRetry(RECORD_RETRY);
    const [taskMonitor, taskProvider, taskReplica, taskItem] = disableProtectionTasks(input.keepReplica);
    const warnings: string[] = [];
    context.df.setCustomStatus({ stage: 'DisablingProtection', jobId });

    function* fail(task: string, failure: Failure): Generator<df.Task, DisableProtectionResult, unknown> {
        yield record({
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: failure }],
            item: {
                protectionState: 'DisablingFailed',
                protectionStateDescription: PROTECTION_STATES.DisablingFailed,
                replicationHealth: 'Critical',
                healthReasons: [
                    {
                        code: 'NonRecoverableError',
                        severity: 'Critical',
                        message: `${failure.code}: ${failure.message}`,
                        errorCode: failure.code,
                    },
                ],
            },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'DisableProtectionFailed',
                severity: 'Critical',
                message: `${task} failed: ${failure.code}: ${failure.message}`,
            },
        });
        const error = { code: failure.code, message: failure.message };
        context.df.setCustomStatus({ stage: 'Failed', jobId, error });
        return { result: 'Failed', jobId, warnings, error };
    }

    yield record({
        jobId,
        jobChanges: [{ type: 'taskStarted', task: taskMonitor, at: now() }],
        item: {
            protectionState: 'DisablingProtection',
            protectionStateDescription: PROTECTION_STATES.DisablingProtection,
            currentJobId: jobId,
        },
    });
    const stopped = yield* callWithRetrySchedule<unknown>(context, stopLifecycleInstancesActivity, {
        vmId,
        jobId,
        at: now(),
    });
    if (!stopped.ok) return yield* fail(taskMonitor, stopped);
    yield record({ jobId, jobChanges: [{ type: 'taskSucceeded', task: taskMonitor, at: now() }] });

    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskProvider, at: now() }] });
    const stop = yield* callWithRetrySchedule<null>(
        context,
        sendProviderEventActivity,
        stopReplicationEvent(
            input.siteId,
            vmId,
            jobId,
            `Protection disabled by job ${jobId}${input.keepReplica ? '; the replica disks are kept' : ''}.`,
        ),
        { giveUpAfterMs: STOP_REPLICATION_GIVE_UP_MS },
    );
    if (!stop.ok) {
        // A VM deleted on-premises, or a provider gone for good, must not keep the VM protected in Azure.
        const warning = `The provider was not told to stop (${stop.code}: ${stop.message}); it will be refused from now on.`;
        warnings.push(warning);
        yield record({
            jobId,
            jobChanges: [{ type: 'taskDetail', task: taskProvider, detail: warning }],
            event: {
                eventId: `${jobId}:stop-warning`,
                kind: 'DisableProtectionWarning',
                severity: 'Warning',
                message: warning,
            },
        });
    }
    yield record({ jobId, jobChanges: [{ type: 'taskSucceeded', task: taskProvider, at: now() }] });

    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskReplica, at: now() }] });
    if (!input.keepReplica) {
        const removed = yield* callWithRetrySchedule<null>(context, removeReplicaActivity, {
            vmId,
            diskIds: input.diskIds,
        });
        if (!removed.ok) return yield* fail(taskReplica, removed);
    }
    yield record({ jobId, jobChanges: [{ type: 'taskSucceeded', task: taskReplica, at: now() }] });

    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskItem, at: now() }] });
    yield record({
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: taskItem, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        deleteItem: true,
        event: {
            eventId: `${jobId}:disabled`,
            kind: 'ProtectionDisabled',
            severity: 'Info',
            message: input.keepReplica
                ? 'Protection disabled; replica disks and recovery points were kept.'
                : 'Protection disabled; replica disks and recovery points were removed.',
        },
    });
    context.df.setCustomStatus({ stage: 'Disabled', jobId });
    return { result: 'Disabled', jobId, warnings };
}

df.app.orchestration(DISABLE_PROTECTION, disableProtectionOrchestrator);
