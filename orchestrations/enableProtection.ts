import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { INITIAL_REPLICATION_CYCLE_ID } from '../shared/contracts/ids';
import { scaledMs } from '../shared/durableTime';
import { HvrError } from '../shared/errors';
import { HealthReason } from '../shared/health';
import {
    CycleCompleteEvent,
    InitialReplicationProgressEvent,
    instanceIds,
    lifecycleEvents,
    ProviderErrorEvent,
    ResyncRequiredEvent,
} from '../shared/lifecycle/instances';
import { ReplicationPolicy } from '../shared/policy/replicationPolicy';
import { fitCustomStatus } from '../shared/lifecycle/customStatus';
import { Failure, Outcome, outcomeOf } from '../shared/retry';
import { newJob } from '../shared/state/jobs';
import { getPolicy } from '../shared/state/policies';
import { PROTECTION_STATES, ProtectionState } from '../shared/state/protectedItems';
import { getSite } from '../shared/state/sites';
import { laterInstant } from '../shared/storage/instants';
import { checkSupportMatrix, VmDescription } from '../shared/supportMatrix';
import { ports } from '../shared/ports';
import { cancelDeadlineActivity, DeadlineReachedEvent, startDeadlineActivity } from './lifecycle/deadline';
import { EventWaiters } from './lifecycle/eventWaiters';
import { callWithRetrySchedule, retryDetail, retryStatus } from './lifecycle/retrySchedule';
import {
    LifecycleRecord,
    RECORD_RETRY,
    recordLifecycleActivity,
    sendProviderEventActivity,
} from './lifecycleActivities';
import { MonitorInput, REPLICATION_MONITOR } from './replicationMonitor';

/**
 * Enable protection → initial replication → finalize protection, for one VM (instance `protect:{vmId}`).
 * Mirrors ASR's "Enable protection" job and its tasks, then waits for initial replication, then runs the
 * "Finalize protection on the virtual machine" job and starts the VM's replication monitor.
 */
export const ENABLE_PROTECTION = 'enableProtection';

export const ENABLE_PROTECTION_TASKS = [
    'Prerequisites check',
    'Identifying the replication target',
    'Enable replication',
    'Starting initial replication',
    'Updating the provider states',
] as const;

export const FINALIZE_PROTECTION_TASKS = ['Finalizing protection', 'Starting the replication monitor'] as const;

/** Initial replication that has not finished after this long fails (the item shows InitialReplicationFailed). */
export const DEFAULT_INITIAL_REPLICATION_TIMEOUT_HOURS = 72;

/**
 * The input's shape (docs/lifecycle.md, versioning): 2 waits for initial replication with one deadline instance
 * (`irdeadline:{vmId}:{jobId}`); 1 (absent), what instances started before it run, with a timer per event round.
 */
export const ENABLE_PROTECTION_INPUT_VERSION = 2;

export interface EnableProtectionInput {
    version?: number;
    vmId: string;
    siteId: string;
    policyName: string;
    /** The Enable protection job, created NotStarted by the API. */
    jobId: string;
    vm: VmDescription;
    initialReplicationTimeoutHours?: number;
}

/** The instance's custom status: where it is, and per-disk progress during initial replication. */
export interface EnableProtectionStatus {
    stage:
        | 'EnablingProtection'
        | 'WaitingForScheduledStart'
        | 'InitialReplicationInProgress'
        | 'FinalizingProtection'
        | 'Protected'
        | 'Failed';
    jobId: string;
    task?: string;
    retry?: { attempt: number; code: string; message: string; nextAttemptAt: string };
    scheduledStart?: string;
    initialReplication?: { startedAt: string; timeoutAt: string; disks: Record<string, number> };
    finalizeJobId?: string;
    error?: { code: string; message: string };
}

export interface EnableProtectionResult {
    result: 'Protected' | 'Failed';
    jobId: string;
    finalizeJobId?: string;
    error?: { code: string; message: string };
}

// ---- activities -------------------------------------------------------------------------------------------

export interface PrerequisitesInput {
    vmId: string;
    siteId: string;
    policyName: string;
    vm: VmDescription;
}

export interface PrerequisitesResult {
    policy: ReplicationPolicy;
    siteTimeZone: string;
}

/** Site registered, policy exists, VM within the support matrix. */
export async function checkProtectionPrerequisites(input: PrerequisitesInput): Promise<Outcome<PrerequisitesResult>> {
    return outcomeOf(async () => {
        const scope = ports().state();
        const site = await getSite(scope, input.siteId);
        if (!site) throw new HvrError('NOT_FOUND', `Site ${input.siteId} is not registered; register it first.`);
        const policy = await getPolicy(scope, input.policyName);
        if (!policy) throw new HvrError('NOT_FOUND', `Replication policy ${input.policyName} does not exist.`);
        if (input.vm.vmId !== input.vmId) {
            throw new HvrError('PREREQUISITE_FAILED', `VM description is for ${input.vm.vmId}, not ${input.vmId}.`);
        }
        const violations = checkSupportMatrix(input.vm);
        if (violations.length > 0) {
            throw new HvrError('PREREQUISITE_FAILED', violations.map((v) => v.message).join(' '), {
                rules: violations.map((v) => v.rule),
            });
        }
        const { createdAt: _c, updatedAt: _u, etag: _e, ...plain } = policy;
        return { policy: plain, siteTimeZone: site.timeZone };
    });
}

export const checkProtectionPrerequisitesActivity = df.app.activity('checkProtectionPrerequisites', {
    handler: (input: unknown) => checkProtectionPrerequisites(input as PrerequisitesInput),
});

export async function identifyReplicationTarget(input: { vmId: string; siteId: string }): Promise<Outcome<string>> {
    return outcomeOf(async () => (await ports().replicas().identifyTarget(input)).target);
}

export const identifyReplicationTargetActivity = df.app.activity('identifyReplicationTarget', {
    handler: (input: unknown) => identifyReplicationTarget(input as { vmId: string; siteId: string }),
});

/** Creates every disk's replica (ASR's CreateReplicationRelationship). Idempotent, so retries are safe. */
export interface RelationshipInput {
    vmId: string;
    siteId: string;
    vm: VmDescription;
    createdAt: string;
}

export async function createReplicationRelationship(input: RelationshipInput): Promise<Outcome<number>> {
    return outcomeOf(async () => {
        const replicas = ports().replicas();
        for (const disk of input.vm.disks) {
            await replicas.createReplicaDisk({
                vmId: input.vmId,
                siteId: input.siteId,
                disk,
                createdAt: input.createdAt,
            });
        }
        return input.vm.disks.length;
    });
}

export const createReplicationRelationshipActivity = df.app.activity('createReplicationRelationship', {
    handler: (input: unknown) => createReplicationRelationship(input as RelationshipInput),
});

/** Starts `monitor:{vmId}` unless it already runs (a replayed finalize must not start a second one). */
export async function startReplicationMonitor(
    input: MonitorInput,
    context: InvocationContext,
): Promise<Outcome<'started' | 'alreadyRunning'>> {
    return outcomeOf(() =>
        ports().orchestrations.startIfNotRunning(
            context,
            REPLICATION_MONITOR,
            instanceIds.replicationMonitor(input.vmId),
            input,
        ),
    );
}

export const startReplicationMonitorActivity = df.app.activity('startReplicationMonitor', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) => startReplicationMonitor(input as MonitorInput, context),
});

// ---- orchestrator -----------------------------------------------------------------------------------------

function criticalReason(failure: Failure): HealthReason {
    return {
        code: 'NonRecoverableError',
        severity: 'Critical',
        message: `${failure.code}: ${failure.message}`,
        errorCode: failure.code,
    };
}

function clampPercent(value: unknown): number | undefined {
    if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
    return Math.min(100, Math.max(0, Math.round(value * 10) / 10));
}

export function* enableProtectionOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, EnableProtectionResult, unknown> {
    const input = context.df.getInput<EnableProtectionInput>();
    const { vmId, siteId, jobId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const record = (r: Omit<LifecycleRecord, 'vmId' | 'at'>): df.Task =>
        recordLifecycleActivity({ vmId, at: now(), ...r }).withRetry(RECORD_RETRY);
    let status: EnableProtectionStatus = { stage: 'EnablingProtection', jobId };
    const setStatus = (patch: Partial<EnableProtectionStatus>): void => {
        status = { ...status, ...patch };
        context.df.setCustomStatus(fitCustomStatus(status));
    };
    const itemState = (state: ProtectionState) => ({
        protectionState: state,
        protectionStateDescription: PROTECTION_STATES[state],
    });

    function* failJob(
        task: string,
        failure: Failure,
        state: ProtectionState,
    ): Generator<df.Task, EnableProtectionResult, unknown> {
        yield record({
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: failure }],
            item: { ...itemState(state), replicationHealth: 'Critical', healthReasons: [criticalReason(failure)] },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'EnableProtectionFailed',
                severity: 'Critical',
                message: `${task} failed: ${failure.code}: ${failure.message}`,
                details: { jobId, task, code: failure.code },
            },
        });
        const error = { code: failure.code, message: failure.message };
        setStatus({ stage: 'Failed', error, retry: undefined });
        return { result: 'Failed', jobId, error };
    }

    /** Runs one job task's activity on the retry schedule and records the task's start, retries and success. */
    function* runTask<T>(
        task: string,
        activity: df.RegisteredActivity,
        activityInput: unknown,
    ): Generator<df.Task, Outcome<T>, unknown> {
        setStatus({ task, retry: undefined });
        yield record({ jobId, jobChanges: [{ type: 'taskStarted', task, at: now() }] });
        const outcome = yield* callWithRetrySchedule<T>(context, activity, activityInput, {
            onRetry: (notice) => {
                setStatus({ retry: retryStatus(notice) });
                return record({ jobId, jobChanges: [{ type: 'taskDetail', task, detail: retryDetail(notice) }] });
            },
        });
        if (outcome.ok) {
            setStatus({ retry: undefined });
            yield record({ jobId, jobChanges: [{ type: 'taskSucceeded', task, at: now() }] });
        }
        return outcome;
    }

    const [taskPrereq, taskTarget, taskEnable, taskStart, taskProviderStates] = ENABLE_PROTECTION_TASKS;
    const enableStartedAt = now();
    setStatus({});
    yield record({ item: { ...itemState('EnablingProtection'), currentJobId: jobId } });

    const prereq = yield* runTask<PrerequisitesResult>(taskPrereq, checkProtectionPrerequisitesActivity, {
        vmId,
        siteId,
        policyName: input.policyName,
        vm: input.vm,
    } satisfies PrerequisitesInput);
    if (!prereq.ok) return yield* failJob(taskPrereq, prereq, 'EnablingFailed');
    const { policy } = prereq.value;

    const target = yield* runTask<string>(taskTarget, identifyReplicationTargetActivity, { vmId, siteId });
    if (!target.ok) return yield* failJob(taskTarget, target, 'EnablingFailed');

    const relationship = yield* runTask<number>(taskEnable, createReplicationRelationshipActivity, {
        vmId,
        siteId,
        vm: input.vm,
        createdAt: enableStartedAt,
    } satisfies RelationshipInput);
    if (!relationship.ok) return yield* failJob(taskEnable, relationship, 'EnablingFailed');

    // Starting initial replication: honour the policy's scheduled start with a durable timer.
    if (policy.initialReplicationStart !== 'Immediately') {
        const startAt = Date.parse(policy.initialReplicationStart);
        if (startAt > context.df.currentUtcDateTime.getTime()) {
            const startIso = new Date(startAt).toISOString();
            setStatus({ stage: 'WaitingForScheduledStart', task: taskStart, scheduledStart: startIso });
            yield record({
                jobId,
                jobChanges: [{ type: 'taskStarted', task: taskStart, at: now(), detail: `Waiting until ${startIso}.` }],
            });
            yield context.df.createTimer(new Date(startAt));
            setStatus({ stage: 'EnablingProtection' });
        }
    }
    const diskIds = input.vm.disks.map((d) => d.diskId);
    const started = yield* runTask<null>(taskStart, sendProviderEventActivity, {
        type: 'StartReplication',
        siteId,
        vmId,
        messageId: `StartReplication:${vmId}:${jobId}`,
        // The shape is the published contract's (docs/schemas/event.StartReplication.v1.schema.json); the
        // bandwidth schedule reaches providers through PolicyChanged.
        payload: {
            vmId,
            policyName: policy.name,
            copyFrequencySeconds: policy.copyFrequencySeconds,
            appConsistentSnapshotFrequencyHours: policy.appConsistentSnapshotFrequencyHours,
            initialReplicationStart: policy.initialReplicationStart,
            disks: input.vm.disks.map((d) => ({ diskId: d.diskId, sizeBytes: d.sizeBytes })),
        },
    });
    if (!started.ok) return yield* failJob(taskStart, started, 'EnablingFailed');

    const irStartedAt = now();
    const progress: Record<string, number> = Object.fromEntries(diskIds.map((d) => [d, 0]));
    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskProviderStates, at: now() }] });
    yield record({
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: taskProviderStates, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        item: { ...itemState('InitialReplicationInProgress'), initialReplicationProgress: progress },
        event: {
            eventId: `${jobId}:ir-started`,
            kind: 'InitialReplicationStarted',
            severity: 'Info',
            message: `Initial replication started for ${diskIds.length} disk(s).`,
        },
    });

    type IrError = { code: Failure['code']; message: string };
    /** Initial replication cannot finish: the item goes Critical with the reason, the instance ends Failed. */
    function* failInitialReplication(failure: Failure, eventId: string, message: string) {
        yield record({
            item: {
                ...itemState('InitialReplicationFailed'),
                replicationHealth: 'Critical',
                healthReasons: [criticalReason(failure)],
            },
            event: { eventId, kind: 'InitialReplicationFailed', severity: 'Critical', message },
        });
        const error: IrError = { code: failure.code, message: failure.message };
        setStatus({ stage: 'Failed', error });
        return { result: 'Failed' as const, jobId, error };
    }

    // Initial replication completes when the cloud has merged every disk's initial logs: the merge then records
    // the recovery point of cycle INITIAL_REPLICATION_CYCLE_ID (the cycle id of each disk's last initial log) and
    // raises CycleComplete. The provider's percentages are its progress report, not the proof: a log it shipped
    // may be quarantined, or never arrive. Otherwise: a non-recoverable provider error, or the timeout.
    const timeoutHours = input.initialReplicationTimeoutHours ?? DEFAULT_INITIAL_REPLICATION_TIMEOUT_HOURS;
    const timeoutAt = new Date(Date.parse(irStartedAt) + scaledMs(timeoutHours * 3600_000));
    const initialReplication = { startedAt: irStartedAt, timeoutAt: timeoutAt.toISOString(), disks: progress };
    setStatus({ stage: 'InitialReplicationInProgress', task: undefined, initialReplication });
    const awaited = [
        lifecycleEvents.initialReplicationProgress,
        lifecycleEvents.providerError,
        lifecycleEvents.cycleComplete,
        lifecycleEvents.logApplied,
        lifecycleEvents.resyncRequired,
    ];
    let lastCapturedAt: string | undefined;
    let lastRecoveryPoint: { id: string; at: string } | undefined;

    /** Handles one event: 'complete' once initial replication completed, a result to return when it failed. */
    function* handle(
        name: string,
        result: unknown,
    ): Generator<df.Task, 'complete' | { result: 'Failed'; jobId: string; error: IrError } | undefined, unknown> {
        if (name === lifecycleEvents.initialReplicationProgress) {
            const event = result as InitialReplicationProgressEvent;
            for (const [diskId, percent] of Object.entries(event.disks ?? {})) {
                const value = clampPercent(percent);
                if (diskId in progress && value !== undefined)
                    progress[diskId] = Math.max(progress[diskId] ?? 0, value);
            }
            setStatus({ initialReplication });
            yield record({ item: { initialReplicationProgress: { ...progress } } });
        } else if (name === lifecycleEvents.providerError) {
            const event = result as ProviderErrorEvent;
            const failure: Failure = {
                ok: false,
                code: event.code as Failure['code'],
                message: event.message,
                recoverable: event.recoverable,
            };
            if (!event.recoverable) {
                const message = `The provider reported ${event.code}: ${event.message}`;
                return yield* failInitialReplication(failure, `${jobId}:ir-failed`, message);
            }
            yield record({
                event: {
                    eventId: `${jobId}:provider-error:${event.at}`,
                    kind: 'ProviderError',
                    severity: 'Warning',
                    message: `The provider reported ${event.code}: ${event.message}; it retries.`,
                },
            });
        } else if (name === lifecycleEvents.cycleComplete) {
            const event = result as CycleCompleteEvent;
            lastRecoveryPoint = { id: event.recoveryPointId, at: event.capturedAt };
            lastCapturedAt = laterInstant(lastCapturedAt, event.capturedAt);
            if (event.cycleId === INITIAL_REPLICATION_CYCLE_ID) {
                // Every disk merged its initial logs: whatever the provider last said, each disk is complete.
                for (const d of diskIds) progress[d] = 100;
                return 'complete';
            }
        } else if (name === lifecycleEvents.resyncRequired) {
            // The merge refused an initial log (quarantined) or found a gap: the VM stays out of Protected, and the
            // item says why, until a later initial point completes or the timeout fails initial replication.
            const event = result as ResyncRequiredEvent;
            const reason: HealthReason = {
                code: 'ResyncRequired',
                severity: 'Critical',
                message: `Initial replication of disk ${event.diskId} cannot complete (${event.reason}): ${event.detail}`,
            };
            yield record({
                item: { replicationHealth: 'Critical', healthReasons: [reason] },
                event: {
                    eventId: `${jobId}:ir-blocked:${event.diskId}:${event.at}`,
                    kind: 'InitialReplicationBlocked',
                    severity: 'Critical',
                    message: reason.message,
                    details: { diskId: event.diskId, reason: event.reason },
                },
            });
        }
        // LogApplied during initial replication needs nothing here: the merge keeps the disk rows.
        return undefined;
    }

    // Every waiter yielded is read, each once (orchestrations/lifecycle/eventWaiters.ts says why).
    const waiters = new EventWaiters(context);
    // Version 2: the timeout is one timer in its own instance, which raises deadlineReached; every round waits
    // on events only. Version 1 (an instance started before) keeps a timer per round, as it began.
    const deadline =
        (input.version ?? 1) >= 2
            ? { instanceId: instanceIds.initialReplicationDeadline(vmId, jobId), key: `${jobId}:ir-timeout` }
            : undefined;
    if (deadline) {
        yield startDeadlineActivity({
            instanceId: deadline.instanceId,
            deadline: { target: context.df.instanceId, fireAt: timeoutAt.toISOString(), key: deadline.key },
        }).withRetry(RECORD_RETRY);
    }
    /** How the wait ended: complete, timed out, or failed with the result to return. */
    let ended: 'complete' | 'timedOut' | { result: 'Failed'; jobId: string; error: IrError } | undefined;
    while (ended === undefined) {
        let handledOne = false;
        let deadlineReached = false;
        for (let event = waiters.take(); event; event = waiters.take()) {
            handledOne = true;
            if (event.name === lifecycleEvents.deadlineReached) {
                // Events that came with it are still read first: the initial point may be among them.
                if ((event.payload as DeadlineReachedEvent | undefined)?.key === deadline?.key) deadlineReached = true;
                continue;
            }
            ended = yield* handle(event.name, event.payload);
            if (ended !== undefined) break;
        }
        if (ended !== undefined) break;
        if (deadlineReached) {
            ended = 'timedOut';
            break;
        }
        // A handler's activity let more events in: read them before waiting again.
        if (handledOne) continue;
        if (deadline) {
            yield context.df.Task.any(waiters.fresh([...awaited, lifecycleEvents.deadlineReached]));
            continue;
        }
        const timeout = context.df.createTimer(timeoutAt);
        yield context.df.Task.any([...waiters.fresh(awaited), timeout]);
        if (!timeout.isCompleted) {
            timeout.cancel();
            continue;
        }
        if (!waiters.pending) ended = 'timedOut';
    }
    // A deadline that has not fired is no longer needed, whichever way the wait ended.
    if (deadline && ended !== 'timedOut') {
        yield cancelDeadlineActivity({ instanceId: deadline.instanceId }).withRetry(RECORD_RETRY);
    }
    if (ended === 'timedOut') {
        const failure: Failure = {
            ok: false,
            code: 'TIMEOUT',
            recoverable: false,
            message: `Initial replication did not finish within ${timeoutHours} h (progress ${JSON.stringify(progress)}).`,
        };
        return yield* failInitialReplication(failure, `${jobId}:ir-timeout`, failure.message);
    }
    if (ended !== 'complete') return ended;

    // Finalize protection: its own job, as in ASR.
    const finalizeJobId = context.df.newGuid(`${jobId}:finalize`);
    const [taskFinalize, taskMonitor] = FINALIZE_PROTECTION_TASKS;
    setStatus({ stage: 'FinalizingProtection', finalizeJobId });
    yield record({
        createJob: newJob(
            finalizeJobId,
            'FinalizeProtection',
            vmId,
            FINALIZE_PROTECTION_TASKS,
            now(),
            context.df.instanceId,
        ),
        jobId: finalizeJobId,
        jobChanges: [{ type: 'taskStarted', task: taskFinalize, at: now() }],
    });
    yield record({
        jobId: finalizeJobId,
        jobChanges: [{ type: 'taskSucceeded', task: taskFinalize, at: now() }],
        item: {
            ...itemState('Protected'),
            currentJobId: finalizeJobId,
            replicationHealth: 'Normal',
            healthReasons: [],
            resynchronizationState: 'None',
            initialReplicationProgress: { ...progress },
            ...(lastCapturedAt !== undefined ? { lastCapturedAt } : {}),
            ...(lastRecoveryPoint
                ? { lastRecoveryPointId: lastRecoveryPoint.id, lastRecoveryPointAt: lastRecoveryPoint.at }
                : {}),
        },
        event: {
            eventId: `${jobId}:protected`,
            kind: 'ProtectionStateChanged',
            severity: 'Info',
            message: 'Initial replication finished; the VM is protected.',
        },
    });

    const monitorInput: MonitorInput = {
        vmId,
        siteId,
        diskIds,
        copyFrequencySeconds: policy.copyFrequencySeconds,
        monitoringSince: now(),
        // Until the first delta cycle is applied, RPO counts from the end of initial replication (monitoringSince).
        ...(lastCapturedAt !== undefined ? { lastCapturedAt } : {}),
        ...(lastRecoveryPoint ? { lastRecoveryPoint } : {}),
        generation: 0,
    };
    yield record({ jobId: finalizeJobId, jobChanges: [{ type: 'taskStarted', task: taskMonitor, at: now() }] });
    const monitor = yield* callWithRetrySchedule<string>(context, startReplicationMonitorActivity, monitorInput);
    if (!monitor.ok) {
        yield record({
            jobId: finalizeJobId,
            jobChanges: [{ type: 'taskFailed', task: taskMonitor, at: now(), error: monitor }],
            item: { replicationHealth: 'Critical', healthReasons: [criticalReason(monitor)] },
        });
        setStatus({ stage: 'Failed', error: { code: monitor.code, message: monitor.message } });
        return { result: 'Failed', jobId, finalizeJobId, error: { code: monitor.code, message: monitor.message } };
    }
    yield record({
        jobId: finalizeJobId,
        jobChanges: [
            { type: 'taskSucceeded', task: taskMonitor, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
    });
    setStatus({ stage: 'Protected' });
    return { result: 'Protected', jobId, finalizeJobId };
}

df.app.orchestration(ENABLE_PROTECTION, enableProtectionOrchestrator);
