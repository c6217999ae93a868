import * as df from 'durable-functions';
import { lifecycleEvents, instanceIds } from '../shared/lifecycle/instances';
import { PROTECTION_STATES } from '../shared/state/protectedItems';
import { Failure } from '../shared/retry';
import { MonitorInput } from './replicationMonitor';
import { startReplicationMonitorActivity } from './enableProtection';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { RESYNC_ORCHESTRATION, ResyncInput, ResyncResult } from './resync/events';
import { recordStep } from './testFailover';

/**
 * Re-protect after a failback (instance `reprotect:{vmId}`, job "Re-protect", ASR's reverse replication): the
 * replica in Azure still holds the disks as they were at the failover, and the on-premises disks now hold what the
 * VM in Azure wrote since. No initial replication: the resync (a child `resync:{vmId}`) compares the replica's
 * digests with the provider's disks and merges only what differs, makes that the new baseline, and delta cycles
 * resume under a new replication monitor. Callable as a sub-orchestration (recovery plans) with the same input.
 */
export const REPROTECT = 'reprotect';

export const REPROTECT_TASKS = [
    'Resynchronizing the replica with the on-premises disks',
    'Resuming replication',
] as const;

export interface ReprotectInput {
    vmId: string;
    siteId: string;
    jobId: string;
    /** When the operator asked (names the child resync deterministically). */
    requestedAt: string;
    diskIds: string[];
    copyFrequencySeconds: number;
}

export interface ReprotectResult {
    result: 'Protected' | 'Failed';
    jobId: string;
    resyncJobId?: string;
    recoveryPointId?: string;
    error?: { code: string; message: string };
}

export function* reprotectOrchestrator(context: df.OrchestrationContext): Generator<df.Task, ReprotectResult, unknown> {
    const input = context.df.getInput<ReprotectInput>();
    const { vmId, siteId, jobId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const [resyncTask, resumeTask] = REPROTECT_TASKS;
    context.df.setCustomStatus({ stage: 'Resynchronizing', jobId });

    yield* recordStep(context, { vmId, jobId, jobChanges: [{ type: 'taskStarted', task: resyncTask, at: now() }] });
    const resyncInput: ResyncInput = { vmId, siteId, reason: 'DiskChangedOffline', requestedAt: input.requestedAt };
    let resync: ResyncResult;
    try {
        resync = (yield context.df.callSubOrchestrator(
            RESYNC_ORCHESTRATION,
            resyncInput,
            instanceIds.resync(vmId),
        )) as ResyncResult;
    } catch (err) {
        return yield* fail(resyncTask, {
            ok: false,
            code: 'TRANSIENT',
            recoverable: true,
            message: `The resynchronization did not run: ${(err as Error).message}`,
        });
    }
    if (resync.result !== 'Completed') {
        return yield* fail(resyncTask, {
            ok: false,
            code: (resync.error?.code ?? 'TIMEOUT') as Failure['code'],
            recoverable: false,
            message: `Resynchronization ${resync.resyncId} ${resync.result.toLowerCase()}: ${resync.error?.message ?? 'no reason given'}.`,
        });
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            {
                type: 'taskSucceeded',
                task: resyncTask,
                at: now(),
                detail: `Job ${resync.jobId}; new baseline ${resync.recoveryPointId ?? '?'}`,
            },
            { type: 'taskStarted', task: resumeTask, at: now() },
        ],
    });

    const monitorInput: MonitorInput = {
        vmId,
        siteId,
        diskIds: input.diskIds,
        copyFrequencySeconds: input.copyFrequencySeconds,
        monitoringSince: now(),
        generation: 0,
    };
    const monitor = yield* callWithRetrySchedule<string>(context, startReplicationMonitorActivity, monitorInput);
    if (!monitor.ok) return yield* fail(resumeTask, monitor);
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: resumeTask, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        item: {
            protectionState: 'Protected',
            protectionStateDescription: PROTECTION_STATES.Protected,
            replicationHealth: 'Normal',
            healthReasons: [],
        },
        event: {
            eventId: `${jobId}:reprotected`,
            kind: 'ProtectionStateChanged',
            severity: 'Info',
            message: `Re-protected: the replica was brought level by resynchronization ${resync.resyncId}; delta replication resumes.`,
        },
    });
    context.df.setCustomStatus({ stage: 'Protected', jobId, resyncJobId: resync.jobId });
    return {
        result: 'Protected',
        jobId,
        resyncJobId: resync.jobId,
        ...(resync.recoveryPointId ? { recoveryPointId: resync.recoveryPointId } : {}),
    };

    function* fail(task: string, f: Failure): Generator<df.Task, ReprotectResult, unknown> {
        const error = { code: f.code, message: f.message };
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: f }],
            // The VM runs on premises; re-protect can be run again.
            item: { protectionState: 'FailedBack', protectionStateDescription: PROTECTION_STATES.FailedBack },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'ReprotectFailed',
                severity: 'Warning',
                message: `${task} failed: ${error.code}: ${error.message} Run re-protect again.`,
            },
        });
        context.df.setCustomStatus({ stage: 'Failed', jobId, error });
        return { result: 'Failed', jobId, error };
    }
}

/** The event a recovery plan or operator raises to stop waiting (passed on to the child resync's own Cancel). */
export const REPROTECT_CANCEL_EVENT = lifecycleEvents.cancel;

df.app.orchestration(REPROTECT, reprotectOrchestrator);
