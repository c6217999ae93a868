import { Job, JobKind, JobState } from '../state/jobs';

/**
 * What an operator may do to a job, as ASR allows it: cancel some kinds while they run, restart a failed one.
 * The one owner of these rules: the API enforces them (functions/apiReplicationJobs.ts), every job it serves
 * carries the result (`actions`), and the console shows its buttons from that.
 */

export type JobAction = 'Cancel' | 'Restart';

/** How a running job of a kind is cancelled, and what is left afterwards. */
export type CancelMethod =
    /** The orchestration is asked (event `Cancel`) and rolls its own work back before it records Cancelled. */
    | 'raiseCancel'
    /** The orchestration is terminated; the API then records Cancelled and puts the item where it can go on. */
    | 'terminate';

export const CANCEL_METHODS: Readonly<Partial<Record<JobKind, CancelMethod>>> = {
    // Rolled back by the resync itself: the replica keeps its last consistent state, the VM ResynchronizationRequired.
    Resynchronize: 'raiseCancel',
    // Before initial replication starts (the job then ends): the item becomes EnablingFailed (enable again, or disable).
    EnableProtection: 'terminate',
    // The drill stops and its cleanup runs as a job of its own: nothing of it is left running in Azure.
    TestFailover: 'terminate',
};

/**
 * Kinds a Failed job of which can be started again with the same inputs, read back from the item and the job
 * (a failover's recovery point choice is the operator's to make again, so failovers are not restarted).
 */
export const RESTARTABLE_KINDS: ReadonlySet<JobKind> = new Set<JobKind>([
    'EnableProtection',
    'Resynchronize',
    'TestFailoverCleanup',
    'DisableProtection',
    'CommitFailover',
]);

const RUNNING: ReadonlySet<JobState> = new Set<JobState>(['NotStarted', 'InProgress']);

export function isRunning(job: Pick<Job, 'state'>): boolean {
    return RUNNING.has(job.state);
}

/** Why `action` is not possible on the job now, or undefined when it is. */
export function jobActionRefusal(job: Job, action: JobAction): string | undefined {
    if (action === 'Cancel') {
        if (!isRunning(job)) {
            return `Job ${job.jobId} (${job.displayName}) has ended ${job.state}${job.endTime ? ` at ${job.endTime}` : ''}; only a running job can be cancelled.`;
        }
        if (CANCEL_METHODS[job.kind] === undefined) {
            return `A ${job.displayName} job cannot be cancelled once started; jobs that can: ${cancellableKindNames()}.`;
        }
        if (job.instanceId === undefined) return `Job ${job.jobId} names no orchestration to stop.`;
        return undefined;
    }
    if (job.state !== 'Failed') return `Job ${job.jobId} is ${job.state}; only a failed job can be restarted.`;
    if (!RESTARTABLE_KINDS.has(job.kind)) {
        return `A ${job.displayName} job cannot be restarted; start the operation again with its choices. Jobs that can: ${[...RESTARTABLE_KINDS].join(', ')}.`;
    }
    if (job.vmId === '') return `Job ${job.jobId} is a recovery plan's; run the plan again.`;
    return undefined;
}

function cancellableKindNames(): string {
    return Object.keys(CANCEL_METHODS).join(', ');
}

/** The actions the job allows now (the VM's state may still refuse a restart: the operation's own rule). */
export function jobActions(job: Job): JobAction[] {
    return (['Cancel', 'Restart'] as const).filter((a) => jobActionRefusal(job, a) === undefined);
}
