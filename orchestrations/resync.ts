import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { scaledMs } from '../shared/durableTime';
import { HealthReason } from '../shared/health';
import { instanceIds, lifecycleEvents, ResyncRequiredEvent } from '../shared/lifecycle/instances';
import { raiseIfPresent } from '../shared/lifecycle/durableClientErrors';
import { fitCustomStatus } from '../shared/lifecycle/customStatus';
import { Failure, Outcome, outcomeOf } from '../shared/retry';
import { newJob } from '../shared/state/jobs';
import { DEFAULT_LEAF_SIZE } from '../shared/resync/digest';
import { ports } from '../shared/ports';
import { EventWaiters } from './lifecycle/eventWaiters';
import { callWithRetrySchedule, retryDetail, retryStatus } from './lifecycle/retrySchedule';
import { LifecycleRecord, RECORD_RETRY, recordLifecycleActivity } from './lifecycleActivities';
import {
    RESYNC_DIGEST_REQUEST_EVENT,
    RESYNC_ORCHESTRATION,
    ResyncDigestRequestEvent,
    ResyncInput,
    ResyncResult,
    ResyncStatus,
    StartResyncDisk,
} from './resync/events';
import {
    ManifestStep,
    manifestLinks,
    publishRequestedManifest,
    publishRoundOneManifest,
} from '../shared/resync/manifestPublication';
import {
    completeResync,
    protectReplica,
    ProtectedDisk,
    rollbackResyncById,
    verifyResyncApplied,
} from '../shared/resync/replicaProtection';

/**
 * Resynchronization of one VM's disks (instance `resync:{vmId}`), as the "Resynchronize" job: protect the replica
 * with snapshots, publish the replica's digests, let the provider send only what differs, verify the merge
 * applied it, and make the result the new baseline. Cancel or failure restores the snapshots. docs/resync.md.
 */
export { RESYNC_ORCHESTRATION };

export const RESYNC_TASKS = [
    'Protecting the replica disks',
    'Computing replica checksums',
    'Starting resynchronization on the provider',
    'Transferring differing blocks',
    'Verifying and resuming replication',
] as const;

export const DEFAULT_PROVIDER_TIMEOUT_MINUTES = 360;
export const DEFAULT_VERIFY_TIMEOUT_MINUTES = 120;
export const DEFAULT_REFRESH_BUDGET_BYTES = 16 * 1024 ** 3;

// ---- activities -------------------------------------------------------------------------------------------

interface ResyncRef {
    vmId: string;
    resyncId: string;
}

export const protectReplicaActivity = df.app.activity('resyncProtectReplica', {
    handler: (input: unknown): Promise<Outcome<ProtectedDisk[]>> =>
        outcomeOf(() => protectReplica(ports().state(), input as Parameters<typeof protectReplica>[1])),
});

export const publishManifestActivity = df.app.activity('resyncPublishManifest', {
    handler: (input: unknown): Promise<Outcome<ManifestStep>> =>
        outcomeOf(() =>
            publishRoundOneManifest(ports().state(), input as Parameters<typeof publishRoundOneManifest>[1]),
        ),
});

export const answerDigestRequestActivity = df.app.activity('resyncAnswerDigestRequest', {
    handler: (input: unknown): Promise<Outcome<{ manifestBytes: number }>> =>
        outcomeOf(() =>
            publishRequestedManifest(ports().state(), input as Parameters<typeof publishRequestedManifest>[1]),
        ),
});

export interface StartResyncRequest extends ResyncRef {
    siteId: string;
    reason: string;
    disks: { diskId: string; sizeBytes: number; resyncSequence: number; round: number }[];
}

/**
 * Signs read-only URLs for the manifests and sends StartResync to the site's provider. The message id is the
 * resync, round and disks, so a retried send is a duplicate the topic drops.
 */
export async function sendStartResync(input: StartResyncRequest): Promise<Outcome<null>> {
    return outcomeOf(async () => {
        const deps = ports();
        const links = await manifestLinks(deps.state().conn, input.vmId, input.resyncId, input.disks);
        const disks: StartResyncDisk[] = input.disks.map((d, i) => ({
            diskId: d.diskId,
            sizeBytes: d.sizeBytes,
            resyncSequence: d.resyncSequence,
            round: d.round,
            manifestUrl: links[i]!.manifestUrl,
            manifestExpiresOn: links[i]!.manifestExpiresOn,
        }));
        const rounds = [...new Set(input.disks.map((d) => d.round))].join('-');
        await deps.providerEvents().publish({
            type: 'StartResync',
            siteId: input.siteId,
            vmId: input.vmId,
            messageId: `StartResync:${input.resyncId}:${rounds}:${input.disks.map((d) => d.diskId).join(',')}`.slice(
                0,
                128,
            ),
            payload: {
                vmId: input.vmId,
                resyncId: input.resyncId,
                diskIds: input.disks.map((d) => d.diskId),
                blockSizeBytes: DEFAULT_LEAF_SIZE,
                reason: input.reason,
                disks,
            },
        });
        return null;
    });
}

export const sendStartResyncActivity = df.app.activity('resyncSendStart', {
    handler: (input: unknown) => sendStartResync(input as StartResyncRequest),
});

export const verifyResyncActivity = df.app.activity('resyncVerify', {
    handler: (input: unknown): Promise<Outcome<Record<string, number>>> =>
        outcomeOf(() => verifyResyncApplied(ports().state(), input as ResyncRef)),
});

export const completeResyncActivity = df.app.activity('resyncComplete', {
    handler: (input: unknown) =>
        outcomeOf(() => completeResync(ports().state(), input as Parameters<typeof completeResync>[1])),
});

export const rollbackResyncActivity = df.app.activity('resyncRollback', {
    handler: (input: unknown): Promise<Outcome<string[]>> =>
        outcomeOf(() => rollbackResyncById(ports().state(), input as Parameters<typeof rollbackResyncById>[1])),
});

/**
 * Tells the VM's replication monitor how the resync stands, so its health and resynchronizationState follow
 * (Initiated, Completed, or Required again after a rollback). A VM without a monitor is not an error.
 */
export async function notifyReplicationMonitor(
    input: { vmId: string; name: string; payload: unknown },
    context: InvocationContext,
): Promise<'raised' | 'instanceMissing'> {
    // A VM without a monitor is an answer, not an error (shared/lifecycle/durableClientErrors.ts).
    return raiseIfPresent(df.getClient(context), instanceIds.replicationMonitor(input.vmId), input.name, input.payload);
}

export const notifyReplicationMonitorActivity = df.app.activity('resyncNotifyMonitor', {
    extraInputs: [df.input.durableClient()],
    handler: (input: unknown, context: InvocationContext) =>
        notifyReplicationMonitor(input as { vmId: string; name: string; payload: unknown }, context),
});

// ---- orchestrator -----------------------------------------------------------------------------------------

interface ProviderResyncPayload {
    resyncId?: string;
    disks?: Record<string, unknown>;
    at?: string;
}

function criticalReason(failure: Failure): HealthReason {
    return {
        code: 'NonRecoverableError',
        severity: 'Critical',
        message: `Resynchronization failed: ${failure.code}: ${failure.message}`,
        errorCode: failure.code,
    };
}

export function* resyncOrchestrator(context: df.OrchestrationContext): Generator<df.Task, ResyncResult, unknown> {
    const input = context.df.getInput<ResyncInput>();
    const { vmId, siteId } = input;
    const now = (): string => context.df.currentUtcDateTime.toISOString();
    const resyncId = context.df.newGuid(`resync:${vmId}:${input.requestedAt}`);
    const jobId = context.df.newGuid(`resync-job:${vmId}:${input.requestedAt}`);
    const record = (r: Omit<LifecycleRecord, 'vmId' | 'at'>): df.Task =>
        recordLifecycleActivity({ vmId, at: now(), ...r }).withRetry(RECORD_RETRY);
    const notifyMonitor = (name: string, payload: unknown): df.Task =>
        notifyReplicationMonitorActivity({ vmId, name, payload }).withRetry(RECORD_RETRY);

    let status: ResyncStatus = { stage: 'ProtectingReplica', jobId, resyncId, disks: {} };
    const setStatus = (patch: Partial<ResyncStatus>): void => {
        status = { ...status, ...patch };
        context.df.setCustomStatus(fitCustomStatus(status));
    };

    function* runTask<T>(
        task: string,
        activity: df.RegisteredActivity,
        activityInput: unknown,
        options: { giveUpAfterMs?: number; start?: boolean } = {},
    ): Generator<df.Task, Outcome<T>, unknown> {
        setStatus({ task, retry: undefined });
        if (options.start !== false) yield record({ jobId, jobChanges: [{ type: 'taskStarted', task, at: now() }] });
        return yield* callWithRetrySchedule<T>(context, activity, activityInput, {
            ...(options.giveUpAfterMs !== undefined ? { giveUpAfterMs: options.giveUpAfterMs } : {}),
            onRetry: (notice) => {
                setStatus({ retry: retryStatus(notice) });
                return record({ jobId, jobChanges: [{ type: 'taskDetail', task, detail: retryDetail(notice) }] });
            },
        });
    }

    function* succeed(task: string): Generator<df.Task, void, unknown> {
        setStatus({ retry: undefined });
        yield record({ jobId, jobChanges: [{ type: 'taskSucceeded', task, at: now() }] });
    }

    /** Restores the snapshots (retried until it works: a half-resynced replica must not stay), then tells the monitor. */
    function* rollBack(detail: string): Generator<df.Task, Outcome<string[]>, unknown> {
        setStatus({ stage: 'RollingBack' });
        const rolled = yield* callWithRetrySchedule<string[]>(
            context,
            rollbackResyncActivity,
            { vmId, resyncId, at: now() },
            { giveUpAfterMs: 7 * 24 * 3600_000 },
        );
        const event: ResyncRequiredEvent = { vmId, diskId: '*', reason: input.reason, detail, at: now() };
        yield notifyMonitor(lifecycleEvents.resyncRequired, event);
        return rolled;
    }

    function* fail(task: string, failure: Failure): Generator<df.Task, ResyncResult, unknown> {
        const rolled = yield* rollBack(`Resynchronization ${resyncId} failed (${failure.code}); rolled back.`);
        const error = { code: failure.code, message: failure.message };
        yield record({
            jobId,
            jobChanges: [{ type: 'taskFailed', task, at: now(), error: failure }],
            item: {
                // The scheduler tries again in the next window; the job keeps the reason.
                resynchronizationState: 'ResynchronizationRequired',
                resyncReason: input.reason,
                ...(failure.recoverable
                    ? {}
                    : { replicationHealth: 'Critical', healthReasons: [criticalReason(failure)] }),
            },
            event: {
                eventId: `${jobId}:failed`,
                kind: 'ProviderError',
                severity: failure.recoverable ? 'Warning' : 'Critical',
                message: `Resynchronization failed at "${task}": ${failure.code}: ${failure.message}${rolled.ok ? ' The replica was rolled back.' : ` Rollback failed: ${rolled.message}`}`,
                details: { jobId, resyncId, task, code: failure.code },
            },
        });
        setStatus({ stage: 'Failed', error, retry: undefined });
        return { result: 'Failed', jobId, resyncId, error };
    }

    const [taskProtect, taskDigests, taskStart, taskTransfer, taskVerify] = RESYNC_TASKS;
    setStatus({});
    yield record({
        createJob: newJob(jobId, 'Resynchronize', vmId, RESYNC_TASKS, now(), context.df.instanceId, input.requestedBy),
        item: { resynchronizationState: 'ResynchronizationInitiated', resyncReason: input.reason, currentJobId: jobId },
    });
    yield notifyMonitor(lifecycleEvents.resyncProgress, { vmId, resyncId, disks: {}, at: now() });

    // 1. Protect the replica.
    const protectedDisks = yield* runTask<ProtectedDisk[]>(taskProtect, protectReplicaActivity, {
        vmId,
        resyncId,
        reason: input.reason,
        at: now(),
    });
    if (!protectedDisks.ok) return yield* fail(taskProtect, protectedDisks);
    const disks = protectedDisks.value;
    const progress: Record<string, number> = Object.fromEntries(disks.map((d) => [d.diskId, 0]));
    yield* succeed(taskProtect);

    // 2. Target digests and round-1 manifests, one disk at a time, each refresh bounded by its budget.
    setStatus({ stage: 'ComputingDigests', disks: progress });
    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskDigests, at: now() }] });
    for (const disk of disks) {
        for (;;) {
            const step = yield* runTask<ManifestStep>(
                taskDigests,
                publishManifestActivity,
                {
                    vmId,
                    resyncId,
                    diskId: disk.diskId,
                    budgetBytes: input.refreshBudgetBytes ?? DEFAULT_REFRESH_BUDGET_BYTES,
                },
                { start: false },
            );
            if (!step.ok) return yield* fail(taskDigests, step);
            if (step.value.done) break;
        }
    }
    yield* succeed(taskDigests);

    // 3. Publish and start.
    setStatus({ stage: 'StartingOnProvider' });
    const started = yield* runTask<null>(taskStart, sendStartResyncActivity, {
        vmId,
        siteId,
        resyncId,
        reason: input.reason,
        disks: disks.map((d) => ({
            diskId: d.diskId,
            sizeBytes: d.virtualSize,
            resyncSequence: d.baseSequence + 1,
            round: 1,
        })),
    } satisfies StartResyncRequest);
    if (!started.ok) return yield* fail(taskStart, started);
    yield* succeed(taskStart);

    // 4. Wait for the provider: progress, digest requests, completion; Cancel; silence past the timeout.
    const timeoutMinutes = input.providerTimeoutMinutes ?? DEFAULT_PROVIDER_TIMEOUT_MINUTES;
    const timeoutMs = scaledMs(timeoutMinutes * 60_000);
    const rounds: Record<string, number> = Object.fromEntries(disks.map((d) => [d.diskId, 1]));
    setStatus({ stage: 'WaitingForProvider', task: taskTransfer, round: rounds });
    yield record({ jobId, jobChanges: [{ type: 'taskStarted', task: taskTransfer, at: now() }] });
    let completedAt: string | undefined;
    const awaited = [
        lifecycleEvents.resyncProgress,
        lifecycleEvents.resyncCompleted,
        RESYNC_DIGEST_REQUEST_EVENT,
        lifecycleEvents.cancel,
    ];
    // Every waiter yielded is read, each once: messages of different names in one batch resolve several waiters
    // at once (orchestrations/lifecycle/eventWaiters.ts).
    const waiters = new EventWaiters(context);
    while (completedAt === undefined) {
        const received = yield* waiters.next(awaited, timeoutMs);
        if (received === undefined) {
            return yield* fail(taskTransfer, {
                ok: false,
                code: 'TIMEOUT',
                recoverable: true,
                message: `No message from the provider for ${timeoutMinutes} minutes (progress ${JSON.stringify(progress)}).`,
            });
        }
        const { name, payload } = received;
        if (name === lifecycleEvents.cancel) {
            const reason = typeof payload === 'string' ? payload : 'Cancelled by the operator.';
            const rolled = yield* rollBack(`Resynchronization ${resyncId} was cancelled; rolled back.`);
            yield record({
                jobId,
                jobChanges: [{ type: 'jobCancelled', at: now(), reason }],
                item: { resynchronizationState: 'ResynchronizationRequired', resyncReason: input.reason },
            });
            const error = rolled.ok ? undefined : { code: rolled.code, message: rolled.message };
            setStatus({ stage: 'Cancelled', ...(error ? { error } : {}) });
            return { result: 'Cancelled', jobId, resyncId, ...(error ? { error } : {}) };
        }
        const event = (payload ?? {}) as ProviderResyncPayload & Partial<ResyncDigestRequestEvent>;
        // A message of an earlier resync (its provider was slow) must not move this one.
        if (event.resyncId !== resyncId) continue;
        setStatus({ lastProviderMessageAt: now() });
        if (name === RESYNC_DIGEST_REQUEST_EVENT) {
            const diskId = event.diskId ?? '';
            const disk = disks.find((d) => d.diskId === diskId);
            const round = event.round ?? 0;
            if (!disk || typeof event.request !== 'string' || round !== (rounds[diskId] ?? 0) + 1) continue;
            const answered = yield* runTask<{ manifestBytes: number }>(
                taskTransfer,
                answerDigestRequestActivity,
                { vmId, resyncId, diskId, round, request: event.request },
                { start: false },
            );
            if (!answered.ok) return yield* fail(taskTransfer, answered);
            const sent = yield* runTask<null>(
                taskTransfer,
                sendStartResyncActivity,
                {
                    vmId,
                    siteId,
                    resyncId,
                    reason: input.reason,
                    disks: [
                        {
                            diskId,
                            sizeBytes: disk.virtualSize,
                            resyncSequence: disk.baseSequence + 1,
                            round,
                        },
                    ],
                } satisfies StartResyncRequest,
                { start: false },
            );
            if (!sent.ok) return yield* fail(taskTransfer, sent);
            rounds[diskId] = round;
            setStatus({ round: { ...rounds } });
            continue;
        }
        for (const [diskId, value] of Object.entries(event.disks ?? {})) {
            if (diskId in progress && typeof value === 'number' && Number.isFinite(value)) {
                progress[diskId] = Math.max(progress[diskId] ?? 0, Math.min(100, Math.max(0, Math.round(value))));
            }
        }
        setStatus({ disks: { ...progress } });
        if (name === lifecycleEvents.resyncCompleted && disks.every((d) => progress[d.diskId] === 100)) {
            completedAt = typeof event.at === 'string' ? event.at : now();
        }
    }
    yield* succeed(taskTransfer);

    // 5. Verify the merge applied every resync log, then the new baseline.
    setStatus({ stage: 'Verifying' });
    const verified = yield* runTask<Record<string, number>>(
        taskVerify,
        verifyResyncActivity,
        { vmId, resyncId },
        { giveUpAfterMs: (input.verifyTimeoutMinutes ?? DEFAULT_VERIFY_TIMEOUT_MINUTES) * 60_000 },
    );
    if (!verified.ok) return yield* fail(taskVerify, verified);
    const completed = yield* runTask<{ recoveryPointId: string; capturedAt: string; removedPoints: number }>(
        taskVerify,
        completeResyncActivity,
        { vmId, resyncId, capturedAt: completedAt, at: now() },
        { start: false },
    );
    if (!completed.ok) return yield* fail(taskVerify, completed);
    const point = completed.value;
    yield record({
        jobId,
        jobChanges: [
            { type: 'taskSucceeded', task: taskVerify, at: now() },
            { type: 'jobSucceeded', at: now() },
        ],
        event: {
            eventId: `${jobId}:completed`,
            kind: 'ProtectionStateChanged',
            severity: 'Info',
            message: `Resynchronization completed for ${disks.length} disk(s); ${point.removedPoints} older recovery point(s) removed, new baseline ${point.recoveryPointId}.`,
            details: { jobId, resyncId },
        },
    });
    yield notifyMonitor(lifecycleEvents.resyncCompleted, {
        vmId,
        resyncId,
        disks: { ...progress },
        at: now(),
    });
    yield notifyMonitor(lifecycleEvents.cycleComplete, {
        vmId,
        cycleId: `resync-${resyncId}`,
        recoveryPointId: point.recoveryPointId,
        consistency: 'CrashConsistent',
        capturedAt: point.capturedAt,
    });
    setStatus({ stage: 'Completed', task: undefined });
    return { result: 'Completed', jobId, resyncId, recoveryPointId: point.recoveryPointId };
}

df.app.orchestration(RESYNC_ORCHESTRATION, resyncOrchestrator);
