import * as df from 'durable-functions';
import {
    cleanUpDrill,
    createDrillResources,
    DrillPlan,
    DrillRequest,
    drillCopyStatus,
    planDrill,
    recordDrill,
    startDrillCopies,
} from '../shared/failover/drillSteps';
import { scaledMs } from '../shared/durableTime';
import { TEST_FAILOVER_STATES } from '../shared/failover/states';
import { Failure } from '../shared/retry';
import { Drill } from '../shared/state/drills';
import { JobChange } from '../shared/state/jobs';
import { ProtectedItemChanges } from '../shared/state/protectedItems';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { RECORD_RETRY, recordLifecycleActivity } from './lifecycleActivities';

/**
 * Test failover of one VM (instance `testfailover:{vmId}`): copy the chosen recovery point's disks into failover
 * blobs while replication goes on, then create managed disks, NICs in the test (or an isolated) network and the
 * VM. A drill that fails part-way removes what it created. Cleanup (`testFailoverCleanup`, instance
 * `testfailovercleanup:{vmId}`) deletes everything and ends the drill: ASR counts a drill only once cleaned up.
 */
export const TEST_FAILOVER = 'testFailover';
export const TEST_FAILOVER_CLEANUP = 'testFailoverCleanup';

export const TEST_FAILOVER_TASKS = [
    'Prerequisites check for test failover',
    'Preparing the failover disks',
    'Creating the test virtual machine',
] as const;
export const TEST_FAILOVER_CLEANUP_TASKS = ['Deleting the test virtual machine and its resources'] as const;

/** Time between two looks at the disk copies (Azure copies a page blob asynchronously). */
export const COPY_POLL_MS = 30_000;

// ---- activities (shared by failover.ts) -------------------------------------------------------------------

export const planDrillActivity = df.app.activity('planDrill', {
    handler: (input: unknown) => planDrill(input as DrillRequest),
});
export const startDrillCopiesActivity = df.app.activity('startDrillCopies', {
    handler: (input: unknown) => startDrillCopies(input as DrillPlan),
});
export const drillCopyStatusActivity = df.app.activity('drillCopyStatus', {
    handler: (input: unknown) => drillCopyStatus(input as DrillPlan),
});
export const createDrillResourcesActivity = df.app.activity('createDrillResources', {
    handler: (input: unknown) => createDrillResources(input as DrillPlan),
});
export const cleanUpDrillActivity = df.app.activity('cleanUpDrill', {
    handler: (input: unknown) => cleanUpDrill(input as { vmId: string; drillId: string }),
});
export const recordDrillActivity = df.app.activity('recordDrill', {
    handler: (input: unknown) =>
        recordDrill(input as { vmId: string; drillId: string; changes: Partial<Omit<Drill, 'vmId' | 'drillId'>> }),
});

// ---- steps shared with failover.ts --------------------------------------------------------------------------

/** Records on the drill, then the job and the protected item (each retried on its own). */
export function* recordStep(
    context: df.OrchestrationContext,
    r: {
        vmId: string;
        jobId: string;
        drillId?: string;
        jobChanges?: JobChange[];
        item?: ProtectedItemChanges;
        drill?: Partial<Omit<Drill, 'vmId' | 'drillId'>>;
        event?: { eventId: string; kind: string; severity: 'Info' | 'Warning' | 'Critical'; message: string };
    },
): Generator<df.Task, void, unknown> {
    const at = context.df.currentUtcDateTime.toISOString();
    // The drill row first: the job's end is the step's last write, so whoever sees the job finished (an operator,
    // the cleanup's API check) finds the drill finished too. Each activity is a queue round trip on the real
    // engine: the other order left a Succeeded cleanup job with its drill still CleaningUp for that long.
    if (r.drill && r.drillId !== undefined) {
        yield recordDrillActivity({ vmId: r.vmId, drillId: r.drillId, changes: r.drill }).withRetry(RECORD_RETRY);
    }
    yield recordLifecycleActivity({
        vmId: r.vmId,
        at,
        jobId: r.jobId,
        jobChanges: r.jobChanges,
        item: r.item,
        event: r.event,
    }).withRetry(RECORD_RETRY);
}

/**
 * Prepares the disks and creates the resources; returns the plan and the VM id, or the failure and the task it
 * failed in. Waits for the copies with durable timers, so a long copy holds no activity open.
 */
export function* runDrill(
    context: df.OrchestrationContext,
    request: DrillRequest,
    /** Without `prerequisites` (a planned failover checked them before the shutdown) its failure is the disks'. */
    tasks: { prerequisites?: string; disks: string; resources: string },
): Generator<
    df.Task,
    | { ok: true; plan: DrillPlan; virtualMachineId: string }
    | { ok: false; task: string; failure: Failure; planned: boolean },
    unknown
> {
    const { vmId, jobId } = request;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const prerequisites = tasks.prerequisites;
    if (prerequisites !== undefined) {
        yield* recordStep(context, {
            vmId,
            jobId,
            jobChanges: [{ type: 'taskStarted', task: prerequisites, at: now() }],
        });
    }
    const planned = yield* callWithRetrySchedule<DrillPlan>(context, planDrillActivity, request);
    if (!planned.ok) return { ok: false, task: prerequisites ?? tasks.disks, failure: planned, planned: false };
    const plan = planned.value;
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            ...(prerequisites !== undefined
                ? [{ type: 'taskSucceeded' as const, task: prerequisites, at: now() }]
                : []),
            {
                type: 'taskStarted',
                task: tasks.disks,
                at: now(),
                detail: `Recovery point ${plan.recoveryPointId} (captured ${plan.capturedAt})`,
            },
        ],
    });
    const started = yield* callWithRetrySchedule<null>(context, startDrillCopiesActivity, plan);
    if (!started.ok) return { ok: false, task: tasks.disks, failure: started, planned: true };
    for (;;) {
        const status = yield* callWithRetrySchedule<{ done: boolean }>(context, drillCopyStatusActivity, plan);
        if (!status.ok) return { ok: false, task: tasks.disks, failure: status, planned: true };
        if (status.value.done) break;
        yield context.df.createTimer(new Date(context.df.currentUtcDateTime.getTime() + scaledMs(COPY_POLL_MS)));
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [
            {
                type: 'taskSucceeded',
                task: tasks.disks,
                at: now(),
                detail: `Recovery point ${plan.recoveryPointId} (captured ${plan.capturedAt})`,
            },
            { type: 'taskStarted', task: tasks.resources, at: now() },
        ],
    });
    const created = yield* callWithRetrySchedule<{ virtualMachineId: string }>(
        context,
        createDrillResourcesActivity,
        plan,
    );
    if (!created.ok) return { ok: false, task: tasks.resources, failure: created, planned: true };
    yield* recordStep(context, {
        vmId,
        jobId,
        jobChanges: [{ type: 'taskSucceeded', task: tasks.resources, at: now() }],
    });
    return { ok: true, plan, virtualMachineId: created.value.virtualMachineId };
}

// ---- test failover --------------------------------------------------------------------------------------------

export type TestFailoverInput = Omit<DrillRequest, 'kind' | 'at'>;

export interface TestFailoverResult {
    result: 'CleanupPending' | 'Failed';
    drillId: string;
    virtualMachineId?: string;
    error?: { code: string; message: string };
    /** For a failed drill: whether what it had created is gone. */
    cleanedUp?: boolean;
}

export function* testFailoverOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, TestFailoverResult, unknown> {
    const input = context.df.getInput<TestFailoverInput>();
    const { vmId, jobId, drillId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    context.df.setCustomStatus({ stage: 'TestFailoverInProgress', jobId, drillId });
    yield* recordStep(context, {
        vmId,
        jobId,
        item: {
            testFailoverState: 'TestFailoverInProgress',
            testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverInProgress,
            currentDrillId: drillId,
        },
    });
    const [prerequisites, disks, resources] = TEST_FAILOVER_TASKS;
    const run = yield* runDrill(
        context,
        { ...input, kind: 'TestFailover', at: now() },
        { prerequisites, disks, resources },
    );
    if (run.ok) {
        yield* recordStep(context, {
            vmId,
            jobId,
            drillId,
            jobChanges: [{ type: 'jobSucceeded', at: now() }],
            item: {
                testFailoverState: 'TestFailoverCleanupPending',
                testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverCleanupPending,
            },
            drill: { state: 'Completed', completedAt: now(), virtualMachineId: run.virtualMachineId },
            event: {
                eventId: `${jobId}:done`,
                kind: 'TestFailoverCompleted',
                severity: 'Info',
                message: `Test VM ${run.virtualMachineId} is running from recovery point ${run.plan.recoveryPointId}; clean up the test failover when checked.`,
            },
        });
        context.df.setCustomStatus({ stage: 'TestFailoverCleanupPending', jobId, drillId });
        return { result: 'CleanupPending', drillId, virtualMachineId: run.virtualMachineId };
    }

    // A drill that failed part-way removes what it created, so nothing is left running or billed.
    const error = { code: run.failure.code, message: run.failure.message };
    let cleanedUp = !run.planned;
    let cleanupError: { code: string; message: string } | undefined;
    if (run.planned) {
        const cleanup = yield* callWithRetrySchedule<unknown>(context, cleanUpDrillActivity, { vmId, drillId });
        cleanedUp = cleanup.ok;
        if (!cleanup.ok) cleanupError = { code: cleanup.code, message: cleanup.message };
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        drillId: run.planned ? drillId : undefined,
        jobChanges: [{ type: 'taskFailed', task: run.task, at: now(), error: run.failure }],
        item: cleanedUp
            ? {
                  testFailoverState: 'None',
                  testFailoverStateDescription: TEST_FAILOVER_STATES.None,
              }
            : {
                  testFailoverState: 'TestFailoverFailed',
                  testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverFailed,
              },
        drill: {
            state: 'Failed',
            completedAt: now(),
            error,
            cleanedUp,
            ...(cleanedUp ? { cleanedUpAt: now() } : {}),
            ...(cleanupError ? { cleanupError } : {}),
        },
        event: {
            eventId: `${jobId}:failed`,
            kind: 'TestFailoverFailed',
            severity: 'Warning',
            message: `${run.task} failed: ${error.code}: ${error.message}${
                cleanedUp ? '; what the drill created was removed.' : '; run the test failover cleanup.'
            }`,
        },
    });
    context.df.setCustomStatus({ stage: 'Failed', jobId, drillId, error });
    return { result: 'Failed', drillId, error, cleanedUp };
}

df.app.orchestration(TEST_FAILOVER, testFailoverOrchestrator);

// ---- cleanup ----------------------------------------------------------------------------------------------------

export interface TestFailoverCleanupInput {
    vmId: string;
    drillId: string;
    jobId: string;
    /** The operator's notes on the drill (ASR asks for them at cleanup). */
    comments?: string;
    /** Whether the drill had completed (only then does its cleanup count as a successful test failover). */
    drillCompleted: boolean;
}

export function* testFailoverCleanupOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { result: 'CleanedUp' | 'Failed'; drillId: string }, unknown> {
    const { vmId, drillId, jobId, comments, drillCompleted } = context.df.getInput<TestFailoverCleanupInput>();
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const [task] = TEST_FAILOVER_CLEANUP_TASKS;
    yield* recordStep(context, {
        vmId,
        jobId,
        drillId,
        jobChanges: [{ type: 'taskStarted', task, at: now() }],
        item: {
            testFailoverState: 'TestFailoverCleanupInProgress',
            testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverCleanupInProgress,
        },
        drill: { state: 'CleaningUp' },
    });
    const cleanup = yield* callWithRetrySchedule<{ deleted: string[] }>(context, cleanUpDrillActivity, {
        vmId,
        drillId,
    });
    if (!cleanup.ok) {
        const error = { code: cleanup.code, message: cleanup.message };
        yield* recordStep(context, {
            vmId,
            jobId,
            drillId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: cleanup }],
            item: {
                testFailoverState: 'TestFailoverCleanupFailed',
                testFailoverStateDescription: TEST_FAILOVER_STATES.TestFailoverCleanupFailed,
            },
            drill: { state: 'CleanupFailed', cleanupError: error },
        });
        return { result: 'Failed', drillId };
    }
    yield* recordStep(context, {
        vmId,
        jobId,
        drillId,
        jobChanges: [
            { type: 'taskSucceeded', task, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        item: {
            testFailoverState: 'None',
            testFailoverStateDescription: TEST_FAILOVER_STATES.None,
            ...(drillCompleted ? { lastSuccessfulTestFailoverTime: now() } : {}),
        },
        drill: { state: 'CleanedUp', cleanedUp: true, cleanedUpAt: now() },
        event: {
            eventId: `${jobId}:cleaned`,
            kind: 'TestFailoverCleanedUp',
            severity: 'Info',
            message: `Test failover drill ${drillId} cleaned up (${cleanup.value.deleted.length} resources and blobs deleted)${
                comments ? `: ${comments}` : '.'
            }`,
        },
    });
    return { result: 'CleanedUp', drillId };
}

df.app.orchestration(TEST_FAILOVER_CLEANUP, testFailoverCleanupOrchestrator);
