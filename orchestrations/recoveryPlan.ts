import * as df from 'durable-functions';
import { RecoverySettings } from '../shared/failover/drillSteps';
import { RecoveryPointChoice } from '../shared/failover/recoveryPointChoice';
import { instanceIds, lifecycleEvents } from '../shared/lifecycle/instances';
import { ActionStep, GroupSteps, planSteps } from '../shared/plans/planSteps';
import { PlanOperation, RecoveryPlanDefinition, recoveryPointChoiceFor } from '../shared/plans/recoveryPlan';
import { PlanVmOperation, PlanVmRequest, PlanVmStart, planVmFailure, startPlanVm } from '../shared/plans/vmOperation';
import { callPlanWebhook, WebhookCall } from '../shared/plans/webhook';
import { Failure } from '../shared/retry';
import { JobChange } from '../shared/state/jobs';
import { RecoveryPlanRun, updateRecoveryPlanRun } from '../shared/state/recoveryPlans';
import { stateScope } from '../shared/state/protectedItems';
import { COMMIT_FAILOVER, COMMIT_TASKS, FAILOVER, failoverTasks } from './failover';
import { callWithRetrySchedule } from './lifecycle/retrySchedule';
import { RECORD_RETRY, recordLifecycleActivity } from './lifecycleActivities';
import { TEST_FAILOVER, TEST_FAILOVER_CLEANUP, TEST_FAILOVER_CLEANUP_TASKS, TEST_FAILOVER_TASKS } from './testFailover';

/**
 * An operation on a recovery plan (instance `recoveryplan:{name}`): one job with a task per group, per action and
 * per VM. Groups run in order; a group's pre-actions one by one, then its VMs in parallel, each through the
 * per-VM orchestration as a sub-orchestration (`recoveryPlanVm` wraps it, so one VM's failure is a value and
 * the group waits for all its VMs), then its post-actions. A failed VM fails its task and, once its group has
 * ended, the job: nothing the other VMs did is undone (as ASR does), later groups do not start, and the same
 * operation run again continues from the steps not yet done (`completedSteps`).
 */
export const RECOVERY_PLAN = 'recoveryPlan';
export const RECOVERY_PLAN_VM = 'recoveryPlanVm';

/** A webhook that keeps failing holds the plan this long (then its task fails and the plan can be retried). */
export const WEBHOOK_GIVE_UP_MS = 5 * 60_000;

/**
 * The per-VM orchestration each operation runs for a VM, with the tasks of the VM's own job.
 *
 * Failback hook: `Failback` is a plan operation (shared/plans/recoveryPlan.ts) without a binding yet. When the
 * per-VM failback orchestration exists, add `Failback` to `PlanVmOperation` (shared/plans/vmOperation.ts: its
 * job kind, claim rule in `claimChanges`, item operation) and a binding here with its input in `childInput`;
 * the API (`PLAN_ACTIONS` in functions/apiRecoveryPlans.ts) then starts it like the others.
 */
export const PLAN_VM_BINDINGS: Record<
    PlanVmOperation,
    { orchestration: string; tasks: readonly string[]; instanceId: (vmId: string) => string; succeeded: string }
> = {
    TestFailover: {
        orchestration: TEST_FAILOVER,
        tasks: TEST_FAILOVER_TASKS,
        instanceId: instanceIds.testFailover,
        succeeded: 'CleanupPending',
    },
    TestFailoverCleanup: {
        orchestration: TEST_FAILOVER_CLEANUP,
        tasks: TEST_FAILOVER_CLEANUP_TASKS,
        instanceId: instanceIds.testFailoverCleanup,
        succeeded: 'CleanedUp',
    },
    PlannedFailover: {
        orchestration: FAILOVER,
        tasks: failoverTasks('PlannedFailover'),
        instanceId: instanceIds.failover,
        succeeded: 'FailedOver',
    },
    UnplannedFailover: {
        orchestration: FAILOVER,
        tasks: failoverTasks('UnplannedFailover'),
        instanceId: instanceIds.failover,
        succeeded: 'FailedOver',
    },
    Commit: {
        orchestration: COMMIT_FAILOVER,
        tasks: COMMIT_TASKS,
        instanceId: instanceIds.commitFailover,
        succeeded: 'Committed',
    },
};

/**
 * The per-VM orchestration keeps its own instance id (`failover:{vmId}`, …): the provider's answers are raised
 * to that id (a planned failover's FailoverShutdownCompleted), and the per-VM API sees it running. The VM's
 * claim runs first, so a running per-VM instance is never replaced; a finished one is (as a start would).
 */
export function planVmInstanceId(operation: PlanVmOperation, vmId: string): string {
    return PLAN_VM_BINDINGS[operation].instanceId(vmId);
}

/** The wrapper of one VM under one plan job. */
export function planVmStepInstanceId(planJobId: string, vmId: string): string {
    return `plan:${planJobId}:${vmId}`;
}

export interface RecoveryPlanInput {
    jobId: string;
    operation: PlanVmOperation;
    /** The plan as it was when the job started (changes are refused while it runs). */
    plan: RecoveryPlanDefinition;
    /** Steps an earlier job of the same run finished: they are not run again. */
    completedSteps: string[];
    /** The job the run's previous attempt was, when this one continues it. */
    resumedFromJobId?: string;
    /** Planned failover: read from the setting when the operation was requested. */
    shutdownTimeoutSeconds?: number;
    /** Test failover cleanup: the operator's notes, passed to every VM's cleanup. */
    comments?: string;
}

/** The payload of `RecoveryPlanResume` on `recoveryplan:{name}` (raised by POST .../resume). */
export interface RecoveryPlanResumeEvent {
    jobId: string;
    /** The step key of the manual action being resumed (stale or repeated resumes are ignored). */
    step: string;
    by: string;
    comments?: string;
    at: string;
}

/** What `recoveryplan:{name}` shows while it runs (`waitingFor` while a manual action holds it). */
export interface RecoveryPlanStatus {
    jobId: string;
    operation: PlanOperation;
    stage: 'InProgress' | 'Succeeded' | 'Failed';
    group?: number;
    waitingFor?: { step: string; action: string; task: string; since: string; instructions?: string };
}

interface PlanVmInput {
    request: Omit<PlanVmRequest, 'at'>;
    childInstanceId: string;
    settings: RecoverySettings;
    recoveryPoint: RecoveryPointChoice;
    shutdownTimeoutSeconds?: number;
    comments?: string;
}

interface PlanVmResult {
    ok: boolean;
    vmId: string;
    vmJobId: string;
    startedAt: string;
    endedAt: string;
    skipped?: string;
    error?: { code: string; message: string; recoverable: boolean };
}

// ---- activities ---------------------------------------------------------------------------------------------

export const startPlanVmActivity = df.app.activity('startPlanVm', {
    handler: (input: unknown) => startPlanVm(input as PlanVmRequest),
});
export const planVmFailureActivity = df.app.activity('planVmFailure', {
    handler: (input: unknown) => planVmFailure(input as { vmJobId: string }),
});
export const callPlanWebhookActivity = df.app.activity('callPlanWebhook', {
    handler: (input: unknown) => callPlanWebhook(input as WebhookCall),
});

/** Adds the steps done to the plan's run and, at the end, its state; only for the run's current job. */
export async function recordPlanRun(input: {
    planName: string;
    jobId: string;
    completed?: string[];
    state?: RecoveryPlanRun['state'];
    at: string;
}): Promise<void> {
    await updateRecoveryPlanRun(
        stateScope(),
        input.planName,
        (plan) => {
            const run = plan.run;
            if (!run || run.jobId !== input.jobId) return undefined;
            const completedSteps = [...new Set([...run.completedSteps, ...(input.completed ?? [])])];
            return {
                ...run,
                completedSteps,
                ...(input.state ? { state: input.state } : {}),
                ...(input.state && input.state !== 'InProgress' ? { endedAt: input.at } : {}),
            };
        },
        input.at,
    );
}
export const recordPlanRunActivity = df.app.activity('recordPlanRun', {
    handler: (input: unknown) => recordPlanRun(input as Parameters<typeof recordPlanRun>[0]),
});

// ---- one VM --------------------------------------------------------------------------------------------------

function childInput(input: PlanVmInput, start: Extract<PlanVmStart, { start: true }>): unknown {
    const { vmId, vmJobId: jobId, operation } = input.request;
    switch (operation) {
        case 'TestFailover':
            return {
                vmId,
                drillId: start.drillId,
                jobId,
                recoveryPoint: input.recoveryPoint,
                settings: input.settings,
            };
        case 'TestFailoverCleanup':
            return {
                vmId,
                drillId: start.drillId,
                jobId,
                drillCompleted: start.drillCompleted ?? false,
                ...(input.comments !== undefined ? { comments: input.comments } : {}),
            };
        case 'PlannedFailover':
        case 'UnplannedFailover':
            return {
                vmId,
                drillId: start.drillId,
                jobId,
                kind: operation,
                recoveryPoint: operation === 'PlannedFailover' ? { type: 'Latest' } : input.recoveryPoint,
                settings: input.settings,
                siteId: start.siteId,
                ...(input.shutdownTimeoutSeconds !== undefined
                    ? { shutdownTimeoutSeconds: input.shutdownTimeoutSeconds }
                    : {}),
            };
        case 'Commit':
            return { vmId, drillId: start.drillId, jobId, recoveryPointId: start.recoveryPointId ?? '' };
    }
}

export function* recoveryPlanVmOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, PlanVmResult, unknown> {
    const input = context.df.getInput<PlanVmInput>();
    const { vmId, vmJobId, operation } = input.request;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const startedAt = now();
    const result = (r: Omit<PlanVmResult, 'vmId' | 'vmJobId' | 'startedAt' | 'endedAt'>): PlanVmResult => ({
        vmId,
        vmJobId,
        startedAt,
        endedAt: now(),
        ...r,
    });
    const started = yield* callWithRetrySchedule<PlanVmStart>(context, startPlanVmActivity, {
        ...input.request,
        at: now(),
    });
    if (!started.ok) return result({ ok: false, error: failureOf(started) });
    if (!started.value.start) return result({ ok: true, skipped: started.value.reason });
    const binding = PLAN_VM_BINDINGS[operation];
    let outcome: { result?: string } | undefined;
    try {
        outcome = (yield context.df.callSubOrchestrator(
            binding.orchestration,
            childInput(input, started.value),
            input.childInstanceId,
        )) as { result?: string } | undefined;
    } catch (err) {
        // The per-VM orchestration itself failed (not a failure it reported): its job may say nothing.
        return result({
            ok: false,
            error: {
                code: 'INTERNAL',
                message: `${binding.orchestration} failed: ${(err as Error).message}`,
                recoverable: true,
            },
        });
    }
    if (outcome?.result === binding.succeeded) return result({ ok: true });
    const error = (yield planVmFailureActivity({ vmJobId }).withRetry(RECORD_RETRY)) as PlanVmResult['error'];
    return result({ ok: false, ...(error ? { error } : {}) });
}

df.app.orchestration(RECOVERY_PLAN_VM, recoveryPlanVmOrchestrator);

function failureOf(f: Failure): { code: string; message: string; recoverable: boolean } {
    return { code: f.code, message: f.message, recoverable: f.recoverable };
}

// ---- the plan ------------------------------------------------------------------------------------------------

const EARLIER = 'Done by an earlier job of this run.';

export function* recoveryPlanOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { result: 'Succeeded' | 'Failed'; failedVms?: string[]; failedStep?: string }, unknown> {
    const input = context.df.getInput<RecoveryPlanInput>();
    const { jobId, operation, plan } = input;
    const planName = plan.name;
    const done = new Set(input.completedSteps);
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const status = (s: Omit<RecoveryPlanStatus, 'jobId' | 'operation'>): void =>
        context.df.setCustomStatus({ jobId, operation, ...s } satisfies RecoveryPlanStatus);
    const record = (jobChanges: JobChange[]): df.Task =>
        recordLifecycleActivity({ vmId: '', at: now(), jobId, jobChanges }).withRetry(RECORD_RETRY);
    const recordRun = (r: { completed?: string[]; state?: RecoveryPlanRun['state'] }): df.Task =>
        recordPlanRunActivity({ planName, jobId, at: now(), ...r }).withRetry(RECORD_RETRY);

    status({ stage: 'InProgress' });
    const groups = planSteps(plan, operation);
    for (const g of groups) {
        status({ stage: 'InProgress', group: g.group });
        const groupDone = [...g.pre, ...g.vms, ...g.post].every((s) => done.has(s.key));
        yield record([
            { type: 'taskStarted', task: g.task, at: now() },
            ...(groupDone ? [{ type: 'taskSucceeded' as const, task: g.task, at: now(), detail: EARLIER }] : []),
            ...[...g.pre, ...g.vms, ...g.post]
                .filter((s) => groupDone || done.has(s.key))
                .map((s) => ({ type: 'taskSucceeded' as const, task: s.task, at: now(), detail: EARLIER })),
        ]);
        if (groupDone) continue;

        for (const step of g.pre) {
            if (done.has(step.key)) continue;
            const failure = yield* runAction(g, step, 'pre');
            if (failure) return yield* failAt(g, [step.task], failure, step.key);
        }

        const vms = g.vms.filter((s) => !done.has(s.key));
        if (vms.length > 0) {
            const runs = vms.map((s) => ({ step: s, vmJobId: context.df.newGuid(`${jobId}:${s.key}`) }));
            yield record(
                runs.map(({ step, vmJobId }) => ({
                    type: 'taskStarted' as const,
                    task: step.task,
                    at: now(),
                    detail: `Job ${vmJobId}`,
                })),
            );
            const results = (yield context.df.Task.all(
                runs.map(({ step, vmJobId }) => {
                    const childInstanceId = planVmInstanceId(operation, step.vm.vmId);
                    const vmInput: PlanVmInput = {
                        request: {
                            operation,
                            planName,
                            planJobId: jobId,
                            vmId: step.vm.vmId,
                            vmJobId,
                            vmTasks: PLAN_VM_BINDINGS[operation].tasks,
                            vmInstanceId: childInstanceId,
                        },
                        childInstanceId,
                        settings: step.vm.settings ?? {},
                        recoveryPoint: recoveryPointChoiceFor(plan.recoveryPoint),
                        ...(input.shutdownTimeoutSeconds !== undefined
                            ? { shutdownTimeoutSeconds: input.shutdownTimeoutSeconds }
                            : {}),
                        ...(input.comments !== undefined ? { comments: input.comments } : {}),
                    };
                    return context.df.callSubOrchestrator(
                        RECOVERY_PLAN_VM,
                        vmInput,
                        planVmStepInstanceId(jobId, step.vm.vmId),
                    );
                }),
            )) as PlanVmResult[];
            const changes: JobChange[] = results.map((r, i): JobChange => {
                const task = runs[i]!.step.task;
                if (r.ok) {
                    return {
                        type: 'taskSucceeded',
                        task,
                        at: r.endedAt,
                        detail: r.skipped ? `Skipped: ${r.skipped}` : `Job ${r.vmJobId}`,
                    };
                }
                const error = r.error ?? { code: 'INTERNAL', message: 'no error recorded', recoverable: true };
                return {
                    type: 'taskFailed',
                    task,
                    at: r.endedAt,
                    jobContinues: true,
                    error: { ...error, message: `VM ${r.vmId} (job ${r.vmJobId}): ${error.message}` },
                };
            });
            yield record(changes);
            const succeeded = results.flatMap((r, i) => (r.ok ? [runs[i]!.step.key] : []));
            if (succeeded.length > 0) yield recordRun({ completed: succeeded });
            const failed = results.filter((r) => !r.ok);
            if (failed.length > 0) {
                return yield* failGroup(
                    g,
                    failed.map((r) => r.vmId),
                );
            }
        }

        for (const step of g.post) {
            if (done.has(step.key)) continue;
            const failure = yield* runAction(g, step, 'post');
            if (failure) return yield* failAt(g, [step.task], failure, step.key);
        }
        yield record([{ type: 'taskSucceeded', task: g.task, at: now() }]);
    }
    yield record([{ type: 'jobSucceeded', at: now() }]);
    yield recordRun({ state: 'Succeeded' });
    status({ stage: 'Succeeded' });
    return { result: 'Succeeded' };

    /** Runs one action; undefined when it completed, else its failure (the task is still InProgress). */
    function* runAction(
        g: GroupSteps,
        step: ActionStep,
        side: 'pre' | 'post',
    ): Generator<df.Task, Failure | undefined, unknown> {
        const { action } = step;
        if (action.kind === 'Manual') {
            const since = now();
            yield record([
                {
                    type: 'taskStarted',
                    task: step.task,
                    at: since,
                    detail: `Waiting for an operator to resume the plan (POST /api/recoveryPlans/${planName}/resume)${
                        action.instructions ? `: ${action.instructions}` : '.'
                    }`,
                },
            ]);
            status({
                stage: 'InProgress',
                group: g.group,
                waitingFor: {
                    step: step.key,
                    action: action.name,
                    task: step.task,
                    since,
                    ...(action.instructions ? { instructions: action.instructions } : {}),
                },
            });
            // A resume for another step or job (repeated, or late) is not this one: wait again, on a fresh task.
            let resumed: RecoveryPlanResumeEvent;
            for (;;) {
                resumed = (yield context.df.waitForExternalEvent(
                    lifecycleEvents.recoveryPlanResume,
                )) as RecoveryPlanResumeEvent;
                if (resumed?.jobId === jobId && resumed.step === step.key) break;
            }
            status({ stage: 'InProgress', group: g.group });
            yield record([
                {
                    type: 'taskSucceeded',
                    task: step.task,
                    at: now(),
                    detail: `Resumed by ${resumed.by}${resumed.comments ? `: ${resumed.comments}` : '.'}`,
                },
            ]);
            yield recordRun({ completed: [step.key] });
            return undefined;
        }
        yield record([{ type: 'taskStarted', task: step.task, at: now() }]);
        const call: WebhookCall = {
            action,
            planName,
            jobId,
            operation,
            group: g.group,
            side,
            deliveryId: `${jobId}:${step.key}`,
            at: now(),
        };
        const called = yield* callWithRetrySchedule<{ status: number }>(context, callPlanWebhookActivity, call, {
            giveUpAfterMs: WEBHOOK_GIVE_UP_MS,
            onRetry: (notice) =>
                record([
                    {
                        type: 'taskDetail',
                        task: step.task,
                        detail: `Attempt ${notice.attempt} failed (${notice.failure.code}: ${notice.failure.message}); next attempt at ${notice.nextAttemptAt}.`,
                    },
                ]),
        });
        if (!called.ok) return called;
        yield record([
            { type: 'taskSucceeded', task: step.task, at: now(), detail: `Answered HTTP ${called.value.status}.` },
        ]);
        yield recordRun({ completed: [step.key] });
        return undefined;
    }

    function* failAt(
        g: GroupSteps,
        tasks: string[],
        failure: Failure,
        key: string,
    ): Generator<df.Task, { result: 'Failed'; failedStep: string }, unknown> {
        yield record([
            ...tasks.map((task): JobChange => ({
                type: 'taskFailed',
                task,
                at: now(),
                jobContinues: true,
                error: { code: failure.code, message: failure.message, recoverable: failure.recoverable },
            })),
        ]);
        yield* endFailed(g, `Group ${g.group} stopped at ${tasks.join(', ')}`);
        return { result: 'Failed', failedStep: key };
    }

    function* failGroup(
        g: GroupSteps,
        vmIds: string[],
    ): Generator<df.Task, { result: 'Failed'; failedVms: string[] }, unknown> {
        yield* endFailed(
            g,
            `Group ${g.group} did not complete: ${vmIds.length === 1 ? 'VM' : 'VMs'} ${vmIds.join(', ')} failed`,
        );
        return { result: 'Failed', failedVms: vmIds };
    }

    function* endFailed(g: GroupSteps, why: string): Generator<df.Task, void, unknown> {
        const later = groups.filter((x) => x.group > g.group).length;
        yield record([
            {
                type: 'taskFailed',
                task: g.task,
                at: now(),
                jobContinues: true,
                error: {
                    code: 'PREREQUISITE_FAILED',
                    recoverable: false,
                    message: `${why}; ${later > 0 ? `the ${later} later group(s) did not start; ` : ''}what completed stays. Run the ${operation} of the plan again to continue from there.`,
                },
            },
            { type: 'jobFailed', at: now() },
        ]);
        yield recordRun({ state: 'Failed' });
        status({ stage: 'Failed', group: g.group });
    }
}

df.app.orchestration(RECOVERY_PLAN, recoveryPlanOrchestrator);
