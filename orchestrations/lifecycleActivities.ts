import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { scaledMs } from '../shared/durableTime';
import { OutgoingProviderEvent } from '../shared/contracts/publisher';
import { HvrError } from '../shared/errors';
import { Outcome, outcomeOf } from '../shared/retry';
import { appendEvent, ReplicationEvent } from '../shared/state/events';
import { createJob, Job, JobChange, updateJob } from '../shared/state/jobs';
import { deleteProtectedItem, ProtectedItemChanges, updateProtectedItem } from '../shared/state/protectedItems';
import { ports } from '../shared/ports';

/** Telemetry name of a job that ended Failed. */
export const JOB_FAILED_METRIC = 'JobFailed';

/**
 * Activities every lifecycle orchestration uses: recording progress (job, protected item, event) and sending
 * events to the provider. Registered here once; the orchestrations import the handles.
 */

/** One bookkeeping step, described by the orchestrator as data (with its deterministic time). */
export interface LifecycleRecord {
    vmId: string;
    at: string;
    createJob?: Job;
    jobId?: string;
    jobChanges?: JobChange[];
    item?: ProtectedItemChanges;
    deleteItem?: boolean;
    event?: Omit<ReplicationEvent, 'vmId' | 'occurredAt'>;
}

/** Applies a LifecycleRecord. Table errors are thrown (transient); the caller retries the activity. */
export async function recordLifecycle(record: LifecycleRecord, context: InvocationContext): Promise<void> {
    const scope = ports().state();
    if (record.createJob) await createJob(scope, record.createJob);
    if (record.jobId !== undefined && record.jobChanges && record.jobChanges.length > 0) {
        const job = await updateJob(scope, record.jobId, record.jobChanges);
        if (
            job.state === 'Failed' &&
            record.jobChanges.some((c) => c.type === 'taskFailed' || c.type === 'jobFailed')
        ) {
            // The "Job failed" alert reads this line (docs/deploy.md).
            const error = job.errors[job.errors.length - 1];
            ports().metrics.emit(context, JOB_FAILED_METRIC, 1, {
                jobId: job.jobId,
                jobType: job.kind,
                vmId: job.vmId,
                ...(job.recoveryPlanName !== undefined ? { recoveryPlanName: job.recoveryPlanName } : {}),
                errorCode: error?.code ?? 'Unknown',
            });
        }
    }
    if (record.item) {
        const changes = record.item;
        try {
            await updateProtectedItem(scope, record.vmId, () => changes, record.at);
        } catch (err) {
            // The item may already be gone (disabled while this ran): the job and events still tell the story.
            if (!(err instanceof HvrError && err.code === 'NOT_FOUND')) throw err;
            context.warn(`Protected item ${record.vmId} is gone; not recording ${JSON.stringify(changes)}`);
        }
    }
    if (record.deleteItem) await deleteProtectedItem(scope, record.vmId);
    if (record.event) await appendEvent(scope, { ...record.event, vmId: record.vmId, occurredAt: record.at });
}

/** Bookkeeping retries quickly on its own: a table hiccup must not fail a lifecycle. */
/** StopReplication for a VM; one message id per job, so the topic's duplicate detection drops a re-send. */
export function stopReplicationEvent(
    siteId: string,
    vmId: string,
    jobId: string,
    reason: string,
): OutgoingProviderEvent {
    return {
        type: 'StopReplication',
        siteId,
        vmId,
        messageId: `StopReplication:${vmId}:${jobId}`,
        payload: { vmId, reason },
    };
}

export const RECORD_RETRY = new df.RetryOptions(scaledMs(5_000), 6);
RECORD_RETRY.backoffCoefficient = 2;

export const recordLifecycleActivity = df.app.activity('recordLifecycle', {
    handler: (input: unknown, context: InvocationContext) => recordLifecycle(input as LifecycleRecord, context),
});

/** Sends one event to the site's provider; publisher errors with a code come back as a Failure. */
export async function sendProviderEvent(event: OutgoingProviderEvent): Promise<Outcome<null>> {
    return outcomeOf(async () => {
        await ports().providerEvents().publish(event);
        return null;
    });
}

export const sendProviderEventActivity = df.app.activity('sendProviderEvent', {
    handler: (input: unknown) => sendProviderEvent(input as OutgoingProviderEvent),
});
