import { RestError } from '@azure/core-rest-pipeline';
import { TableEntity } from '@azure/data-tables';
import { HvrError } from '../errors';
import { deadline } from '../storage/deadline';
import { canonicalInstant } from '../storage/instants';
import { StateScope, stateTable } from './protectedItems';
import {
    assertEntityWithinLimits,
    createEntityIfAbsent,
    encodeKey,
    getEntityOrUndefined,
    mapTableError,
} from './tables';

/** ASR's job and task states. */
export type JobState = 'NotStarted' | 'InProgress' | 'Succeeded' | 'Failed' | 'Cancelled' | 'Suspended';

/** ASR's job kinds for this scenario (scenarioName). */
export type JobKind =
    | 'EnableProtection'
    | 'FinalizeProtection'
    | 'DisableProtection'
    | 'Resynchronize'
    | 'TestFailover'
    | 'TestFailoverCleanup'
    | 'PlannedFailover'
    | 'UnplannedFailover'
    | 'ApplyRecoveryPoint'
    | 'CommitFailover'
    | 'Failback'
    | 'ReverseReplicate';

export const JOB_DISPLAY_NAMES: Record<JobKind, string> = {
    EnableProtection: 'Enable protection',
    FinalizeProtection: 'Finalize protection on the virtual machine',
    DisableProtection: 'Disable protection',
    Resynchronize: 'Resynchronize',
    TestFailover: 'Test failover',
    TestFailoverCleanup: 'Test failover cleanup',
    PlannedFailover: 'Planned failover',
    UnplannedFailover: 'Unplanned failover',
    ApplyRecoveryPoint: 'Change recovery point',
    CommitFailover: 'Commit',
    Failback: 'Planned failover from Azure to on-premises',
    ReverseReplicate: 'Re-protect',
};

export interface JobError {
    code: string;
    message: string;
    recoverable: boolean;
    at: string;
    task?: string;
}

export interface JobTask {
    name: string;
    state: JobState;
    startTime?: string;
    endTime?: string;
    /** A line for the operator, e.g. "Waiting until 2025-01-31T22:00:00Z" or "Retry 3 at ...". */
    detail?: string;
}

/** Who started a job from the management API (absent: the service itself, e.g. the scheduler or the monitor). */
export interface JobRequester {
    /** The signed-in name (Entra ID), or "function key". */
    name: string;
    via: 'FunctionKey' | 'EntraId';
    /** The Entra object id, when signed in. */
    objectId?: string;
}

export interface Job {
    jobId: string;
    kind: JobKind;
    displayName: string;
    vmId: string;
    state: JobState;
    tasks: JobTask[];
    errors: JobError[];
    createdAt: string;
    startTime?: string;
    endTime?: string;
    /** The orchestration instance that runs the job. */
    instanceId?: string;
    /** A recovery plan's job (shared/plans): the plan it runs; `vmId` is then empty. */
    recoveryPlanName?: string;
    requestedBy?: JobRequester;
}

/** A new job in NotStarted with its tasks listed, as ASR shows them before they run. */
export function newJob(
    jobId: string,
    kind: JobKind,
    vmId: string,
    taskNames: readonly string[],
    createdAt: string,
    instanceId?: string,
    requestedBy?: JobRequester,
): Job {
    const job: Job = {
        jobId,
        kind,
        displayName: JOB_DISPLAY_NAMES[kind],
        vmId,
        state: 'NotStarted',
        tasks: taskNames.map((name) => ({ name, state: 'NotStarted' })),
        errors: [],
        createdAt,
    };
    if (instanceId !== undefined) job.instanceId = instanceId;
    if (requestedBy !== undefined) job.requestedBy = requestedBy;
    return job;
}

/** One change to a job, applied by `applyJobChange` (pure, so orchestrations can describe it as data). */
export type JobChange =
    | { type: 'taskStarted'; task: string; at: string; detail?: string }
    | { type: 'taskDetail'; task: string; detail: string }
    /** `detail`, when given, stays as the task's result line (e.g. the recovery point a failover used). */
    | { type: 'taskSucceeded'; task: string; at: string; detail?: string }
    /**
     * `jobContinues`: the task failed but the job goes on until its other running tasks end (a recovery plan's
     * VMs of one group); `jobFailed` then ends it.
     */
    | { type: 'taskFailed'; task: string; at: string; error: Omit<JobError, 'at' | 'task'>; jobContinues?: boolean }
    | { type: 'jobSucceeded'; at: string }
    | { type: 'jobFailed'; at: string }
    | { type: 'jobCancelled'; at: string; reason: string };

function mapTask(job: Job, name: string, f: (task: JobTask) => JobTask): JobTask[] {
    if (!job.tasks.some((t) => t.name === name)) {
        throw new HvrError('VALIDATION_FAILED', `Job ${job.jobId} has no task "${name}".`, {
            jobId: job.jobId,
            task: name,
        });
    }
    return job.tasks.map((t) => (t.name === name ? f(t) : t));
}

/** The job after one change. A job that has ended does not change again (a replayed activity is harmless). */
export function applyJobChange(job: Job, change: JobChange): Job {
    if (job.state === 'Succeeded' || job.state === 'Failed' || job.state === 'Cancelled') return job;
    switch (change.type) {
        case 'taskStarted': {
            const tasks = mapTask(job, change.task, (t) => {
                const next: JobTask = { ...t, state: 'InProgress', startTime: t.startTime ?? change.at };
                if (change.detail !== undefined) next.detail = change.detail;
                return next;
            });
            return { ...job, state: 'InProgress', startTime: job.startTime ?? change.at, tasks };
        }
        case 'taskDetail':
            return { ...job, tasks: mapTask(job, change.task, (t) => ({ ...t, detail: change.detail })) };
        case 'taskSucceeded': {
            const tasks = mapTask(job, change.task, (t) => {
                const { detail: _detail, ...rest } = t;
                return {
                    ...rest,
                    state: 'Succeeded',
                    startTime: t.startTime ?? change.at,
                    endTime: change.at,
                    ...(change.detail !== undefined ? { detail: change.detail } : {}),
                };
            });
            return { ...job, state: 'InProgress', startTime: job.startTime ?? change.at, tasks };
        }
        case 'taskFailed': {
            const tasks = mapTask(job, change.task, (t) => ({
                ...t,
                state: 'Failed',
                startTime: t.startTime ?? change.at,
                endTime: change.at,
            }));
            const error: JobError = { ...change.error, at: change.at, task: change.task };
            if (change.jobContinues) {
                return { ...job, startTime: job.startTime ?? change.at, tasks, errors: [...job.errors, error] };
            }
            return {
                ...job,
                state: 'Failed',
                startTime: job.startTime ?? change.at,
                endTime: change.at,
                tasks,
                errors: [...job.errors, error],
            };
        }
        case 'jobSucceeded':
            return { ...job, state: 'Succeeded', startTime: job.startTime ?? change.at, endTime: change.at };
        case 'jobFailed':
            return { ...job, state: 'Failed', startTime: job.startTime ?? change.at, endTime: change.at };
        case 'jobCancelled':
            return {
                ...job,
                state: 'Cancelled',
                endTime: change.at,
                tasks: job.tasks.map((t) =>
                    t.state === 'NotStarted' || t.state === 'InProgress'
                        ? { ...t, state: 'Cancelled', endTime: change.at }
                        : t,
                ),
                errors: [
                    ...job.errors,
                    { code: 'CANCELLED', message: change.reason, recoverable: false, at: change.at },
                ],
            };
    }
}

export const JOBS_TABLE = 'ReplicationJobs';
const ROW = 'job';

function canonicalTaskTimes(task: JobTask): JobTask {
    const out = { ...task };
    if (out.startTime !== undefined) out.startTime = canonicalInstant(out.startTime);
    if (out.endTime !== undefined) out.endTime = canonicalInstant(out.endTime);
    return out;
}

function toEntity(job: Job): TableEntity<Record<string, unknown>> {
    const entity: TableEntity<Record<string, unknown>> = {
        partitionKey: encodeKey(job.jobId),
        rowKey: ROW,
        jobId: job.jobId,
        kind: job.kind,
        displayName: job.displayName,
        vmId: job.vmId,
        state: job.state,
        // Times written by orchestrations are stored canonical (shared/storage/instants.ts), so they sort as text.
        tasks: JSON.stringify(job.tasks.map(canonicalTaskTimes)),
        errors: JSON.stringify(job.errors),
        createdAt: canonicalInstant(job.createdAt),
    };
    if (job.startTime !== undefined) entity.startTime = canonicalInstant(job.startTime);
    if (job.endTime !== undefined) entity.endTime = canonicalInstant(job.endTime);
    if (job.instanceId !== undefined) entity.instanceId = job.instanceId;
    if (job.recoveryPlanName !== undefined) entity.recoveryPlanName = job.recoveryPlanName;
    if (job.requestedBy !== undefined) entity.requestedBy = JSON.stringify(job.requestedBy);
    assertEntityWithinLimits(entity);
    return entity;
}

function fromEntity(e: Record<string, unknown>): Job {
    const job: Job = {
        jobId: e.jobId as string,
        kind: e.kind as JobKind,
        displayName: e.displayName as string,
        vmId: e.vmId as string,
        state: e.state as JobState,
        tasks: JSON.parse(e.tasks as string) as JobTask[],
        errors: JSON.parse(e.errors as string) as JobError[],
        createdAt: e.createdAt as string,
    };
    if (typeof e.startTime === 'string') job.startTime = e.startTime;
    if (typeof e.endTime === 'string') job.endTime = e.endTime;
    if (typeof e.instanceId === 'string') job.instanceId = e.instanceId;
    if (typeof e.recoveryPlanName === 'string') job.recoveryPlanName = e.recoveryPlanName;
    if (typeof e.requestedBy === 'string') job.requestedBy = JSON.parse(e.requestedBy) as JobRequester;
    return job;
}

/** Creates the job, or leaves an existing one with the same id as it is (a retried start). */
export async function createJob(scope: StateScope, job: Job): Promise<Job> {
    const table = await stateTable(scope, JOBS_TABLE);
    if (await createEntityIfAbsent(table, toEntity(job), `Job ${job.jobId}`)) return job;
    const existing = await getJob(scope, job.jobId);
    if (!existing) throw new HvrError('CONFLICT', `Job ${job.jobId} exists but could not be read; retry.`);
    return existing;
}

export async function getJob(scope: StateScope, jobId: string): Promise<Job | undefined> {
    const table = await stateTable(scope, JOBS_TABLE);
    const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(jobId), ROW);
    return entity ? fromEntity(entity) : undefined;
}

/** Jobs, newest first, optionally for one VM and/or in one state. */
export async function listJobs(
    scope: StateScope,
    filter: { vmId?: string; recoveryPlanName?: string; state?: JobState; top?: number } = {},
): Promise<Job[]> {
    const table = await stateTable(scope, JOBS_TABLE);
    const clauses: string[] = [];
    if (filter.vmId !== undefined) clauses.push(`vmId eq '${filter.vmId.replace(/'/g, "''")}'`);
    if (filter.recoveryPlanName !== undefined) {
        clauses.push(`recoveryPlanName eq '${filter.recoveryPlanName.replace(/'/g, "''")}'`);
    }
    if (filter.state !== undefined) clauses.push(`state eq '${filter.state}'`);
    const jobs: Job[] = [];
    const query = clauses.length > 0 ? { filter: clauses.join(' and ') } : undefined;
    for await (const e of table.listEntities<Record<string, unknown>>({
        queryOptions: query,
        abortSignal: deadline(),
    })) {
        jobs.push(fromEntity(e));
    }
    jobs.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.jobId.localeCompare(b.jobId));
    return filter.top !== undefined ? jobs.slice(0, filter.top) : jobs;
}

/** Applies changes to a stored job under its ETag; NOT_FOUND when it does not exist. */
export async function updateJob(scope: StateScope, jobId: string, changes: readonly JobChange[]): Promise<Job> {
    const table = await stateTable(scope, JOBS_TABLE);
    for (let attempt = 1; ; attempt++) {
        const entity = await getEntityOrUndefined<Record<string, unknown>>(table, encodeKey(jobId), ROW);
        if (!entity) throw new HvrError('NOT_FOUND', `Job ${jobId} does not exist.`, { jobId });
        const current = fromEntity(entity);
        const next = changes.reduce(applyJobChange, current);
        if (JSON.stringify(next) === JSON.stringify(current)) return current;
        try {
            await table.updateEntity(toEntity(next), 'Replace', { etag: entity.etag, abortSignal: deadline() });
            return next;
        } catch (err) {
            if (err instanceof RestError && err.statusCode === 412 && attempt < 8) continue;
            throw mapTableError(err, `Job ${jobId}`);
        }
    }
}
