import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import {
    assessReplicationHealth,
    HEALTH_METRICS,
    HealthAssessment,
    HealthFacts,
    ReplicationHealth,
} from '../shared/health';
import { scaledMs } from '../shared/durableTime';
import { HvrError } from '../shared/errors';
import {
    CycleCompleteEvent,
    lifecycleEvents,
    LogAppliedEvent,
    MergeFailedEvent,
    ProviderErrorEvent,
    ProviderHeartbeatEvent,
    ResyncRequiredEvent,
} from '../shared/lifecycle/instances';
import { appendEvent } from '../shared/state/events';
import { ProtectedItemChanges, ResynchronizationState, updateProtectedItem } from '../shared/state/protectedItems';
import { lifecycleDependencies } from './lifecycle/dependencies';
import { RECORD_RETRY } from './lifecycleActivities';

/**
 * The replication monitor of one protected VM (instance `monitor:{vmId}`): it listens to the merge and the
 * provider, measures RPO, assesses health, and records changes. One generation per wake-up, then
 * `continueAsNew`, so its history stays a few events long however long the VM stays protected.
 */
export const REPLICATION_MONITOR = 'replicationMonitor';

/** A wake-up happens at least this often, so RPO is reported even when nothing arrives. */
export const MONITOR_MAX_SLEEP_MS = 15 * 60_000;

/** Everything the monitor carries from one generation to the next. */
export interface MonitorInput {
    vmId: string;
    siteId: string;
    diskIds: string[];
    copyFrequencySeconds: number;
    monitoringSince: string;
    /** capturedAt of the newest data applied to every disk. */
    lastCapturedAt?: string;
    /** Per disk, capturedAt of the newest applied log. */
    diskCapturedAt?: Record<string, string>;
    lastRecoveryPoint?: { id: string; at: string };
    lastHeartbeatAt?: string;
    resyncRequired?: HealthFacts['resyncRequired'];
    resynchronizationState?: ResynchronizationState;
    mergeFailure?: NonNullable<HealthFacts['mergeFailure']> & { diskId: string };
    providerFailure?: HealthFacts['providerFailure'];
    blockingError?: HealthFacts['blockingError'];
    /** Health as last recorded, to record only changes. */
    recordedHealth?: ReplicationHealth;
    recordedReasonCodes?: string[];
    generation: number;
}

/** The custom status: what an operator sees on the instance. */
export interface MonitorStatus {
    health: ReplicationHealth;
    rpoSeconds: number;
    reasons: string[];
    lastCapturedAt?: string;
    generation: number;
}

// ---- activity ---------------------------------------------------------------------------------------------

export interface ReplicationStatusRecord {
    vmId: string;
    siteId: string;
    at: string;
    assessment: HealthAssessment;
    previousHealth?: ReplicationHealth;
    lastCapturedAt?: string;
    lastRecoveryPoint?: { id: string; at: string };
    resynchronizationState?: ResynchronizationState;
    resyncReason?: string;
    generation: number;
}

/**
 * Emits the RPO metric every wake-up; when something the operator sees changed, writes the protected item,
 * and on a health change emits ReplicationHealthChanged and an event.
 */
export async function recordReplicationStatus(
    record: ReplicationStatusRecord,
    context: InvocationContext,
): Promise<void> {
    const deps = lifecycleDependencies();
    const dims = { vmId: record.vmId, siteId: record.siteId };
    deps.metrics.emit(context, HEALTH_METRICS.rpoSeconds, record.assessment.rpoSeconds, dims);
    const visible: ProtectedItemChanges = {
        replicationHealth: record.assessment.health,
        healthReasons: record.assessment.reasons,
    };
    if (record.lastCapturedAt !== undefined) visible.lastCapturedAt = record.lastCapturedAt;
    if (record.lastRecoveryPoint) {
        visible.lastRecoveryPointId = record.lastRecoveryPoint.id;
        visible.lastRecoveryPointAt = record.lastRecoveryPoint.at;
    }
    if (record.resynchronizationState !== undefined) {
        visible.resynchronizationState = record.resynchronizationState;
        visible.resyncReason = record.resyncReason;
    }
    const scope = deps.state();
    try {
        await updateProtectedItem(
            scope,
            record.vmId,
            (current) => {
                const differs = Object.entries(visible).some(
                    ([k, v]) => JSON.stringify(current[k as keyof typeof current]) !== JSON.stringify(v),
                );
                // RPO moves every second: it is stored with the rest only when something else changes.
                return differs ? { ...visible, rpoSeconds: record.assessment.rpoSeconds } : undefined;
            },
            record.at,
        );
    } catch (err) {
        if (!(err instanceof HvrError && err.code === 'NOT_FOUND')) throw err;
        context.warn(`Protected item ${record.vmId} is gone; the monitor records nothing.`);
    }
    if (record.previousHealth !== record.assessment.health) {
        deps.metrics.emit(context, HEALTH_METRICS.healthChanged, 1, {
            ...dims,
            from: record.previousHealth ?? 'None',
            to: record.assessment.health,
        });
        await appendEvent(scope, {
            vmId: record.vmId,
            eventId: `health:${record.generation}`,
            occurredAt: record.at,
            kind: 'ReplicationHealthChanged',
            severity: record.assessment.health === 'Normal' ? 'Info' : record.assessment.health,
            message:
                record.assessment.reasons.length > 0
                    ? `Replication health is ${record.assessment.health}: ${record.assessment.reasons.map((r) => r.message).join(' ')}`
                    : `Replication health is ${record.assessment.health}.`,
            details: {
                from: record.previousHealth ?? null,
                to: record.assessment.health,
                rpoSeconds: record.assessment.rpoSeconds,
            },
        });
    }
}

export const recordReplicationStatusActivity = df.app.activity('recordReplicationStatus', {
    handler: (input: unknown, context: InvocationContext) =>
        recordReplicationStatus(input as ReplicationStatusRecord, context),
});

// ---- pure state transitions ---------------------------------------------------------------------------------

function later(a: string | undefined, b: string): string {
    return a === undefined || Date.parse(b) > Date.parse(a) ? b : a;
}

/** The monitor's state after one event. Pure, so it can be tested without a runtime. */
export function applyMonitorEvent(state: MonitorInput, name: string, payload: unknown): MonitorInput {
    const next: MonitorInput = { ...state };
    switch (name) {
        case lifecycleEvents.logApplied: {
            const e = payload as LogAppliedEvent;
            const disks = { ...(state.diskCapturedAt ?? {}) };
            disks[e.diskId] = later(disks[e.diskId], e.capturedAt);
            next.diskCapturedAt = disks;
            if (state.diskIds.every((d) => disks[d] !== undefined)) {
                const vmConsistent = state.diskIds
                    .map((d) => disks[d] as string)
                    .reduce((min, t) => (Date.parse(t) < Date.parse(min) ? t : min));
                next.lastCapturedAt = later(state.lastCapturedAt, vmConsistent);
            }
            if (state.mergeFailure?.diskId === e.diskId) delete next.mergeFailure;
            delete next.providerFailure;
            // Data the provider captured is as good a sign of life as a heartbeat.
            next.lastHeartbeatAt = later(state.lastHeartbeatAt, e.capturedAt);
            break;
        }
        case lifecycleEvents.cycleComplete: {
            const e = payload as CycleCompleteEvent;
            next.lastCapturedAt = later(state.lastCapturedAt, e.capturedAt);
            next.lastRecoveryPoint = { id: e.recoveryPointId, at: e.capturedAt };
            delete next.mergeFailure;
            break;
        }
        case lifecycleEvents.resyncRequired: {
            const e = payload as ResyncRequiredEvent;
            next.resyncRequired = { reason: e.reason, detail: e.detail, at: e.at };
            next.resynchronizationState = 'ResynchronizationRequired';
            break;
        }
        case lifecycleEvents.resyncProgress:
            next.resynchronizationState = 'ResynchronizationInitiated';
            break;
        case lifecycleEvents.resyncCompleted:
            delete next.resyncRequired;
            delete next.blockingError;
            delete next.mergeFailure;
            next.resynchronizationState = 'ResynchronizationCompleted';
            break;
        case lifecycleEvents.mergeFailed: {
            const e = payload as MergeFailedEvent;
            if (e.recoverable) next.mergeFailure = { code: e.code, message: e.message, since: e.at, diskId: e.diskId };
            else next.blockingError = { code: e.code, message: e.message, at: e.at };
            break;
        }
        case lifecycleEvents.heartbeat: {
            const e = payload as ProviderHeartbeatEvent;
            next.lastHeartbeatAt = later(state.lastHeartbeatAt, e.at);
            break;
        }
        case lifecycleEvents.cycleUploaded: {
            // The provider channel's CycleUploaded payload: only its time matters here (the provider is alive).
            const e = payload as { at?: unknown } | undefined;
            if (typeof e?.at === 'string') next.lastHeartbeatAt = later(state.lastHeartbeatAt, e.at);
            delete next.providerFailure;
            break;
        }
        case lifecycleEvents.providerError: {
            const e = payload as ProviderErrorEvent;
            if (e.recoverable) next.providerFailure = { code: e.code, message: e.message, since: e.at };
            else next.blockingError = { code: e.code, message: e.message, at: e.at };
            break;
        }
    }
    return next;
}

export function healthFactsOf(state: MonitorInput, now: string): HealthFacts {
    const facts: HealthFacts = {
        now,
        copyFrequencySeconds: state.copyFrequencySeconds,
        monitoringSince: state.monitoringSince,
    };
    if (state.lastCapturedAt !== undefined) facts.lastCapturedAt = state.lastCapturedAt;
    if (state.lastHeartbeatAt !== undefined) facts.lastHeartbeatAt = state.lastHeartbeatAt;
    if (state.resyncRequired) facts.resyncRequired = state.resyncRequired;
    if (state.mergeFailure) {
        const { diskId: _diskId, ...failure } = state.mergeFailure;
        facts.mergeFailure = failure;
    }
    if (state.providerFailure) facts.providerFailure = state.providerFailure;
    if (state.blockingError) facts.blockingError = state.blockingError;
    return facts;
}

// ---- orchestrator -----------------------------------------------------------------------------------------

const MONITORED_EVENTS = [
    lifecycleEvents.logApplied,
    lifecycleEvents.cycleComplete,
    lifecycleEvents.resyncRequired,
    lifecycleEvents.mergeFailed,
    lifecycleEvents.heartbeat,
    lifecycleEvents.cycleUploaded,
    lifecycleEvents.providerError,
    lifecycleEvents.resyncProgress,
    lifecycleEvents.resyncCompleted,
    lifecycleEvents.cancel,
] as const;

export function* replicationMonitorOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { stopped: string } | undefined, unknown> {
    const state = context.df.getInput<MonitorInput>();
    const now = context.df.currentUtcDateTime;
    const assessment = assessReplicationHealth(healthFactsOf(state, now.toISOString()));
    const reasonCodes = assessment.reasons.map((r) => r.code);
    const status: MonitorStatus = {
        health: assessment.health,
        rpoSeconds: assessment.rpoSeconds,
        reasons: reasonCodes,
        generation: state.generation,
    };
    if (state.lastCapturedAt !== undefined) status.lastCapturedAt = state.lastCapturedAt;
    context.df.setCustomStatus(status);

    const record: ReplicationStatusRecord = {
        vmId: state.vmId,
        siteId: state.siteId,
        at: now.toISOString(),
        assessment,
        generation: state.generation,
    };
    if (state.recordedHealth !== undefined) record.previousHealth = state.recordedHealth;
    if (state.lastCapturedAt !== undefined) record.lastCapturedAt = state.lastCapturedAt;
    if (state.lastRecoveryPoint) record.lastRecoveryPoint = state.lastRecoveryPoint;
    if (state.resynchronizationState !== undefined) {
        record.resynchronizationState = state.resynchronizationState;
        if (state.resyncRequired) record.resyncReason = state.resyncRequired.reason;
    }
    yield recordReplicationStatusActivity(record).withRetry(RECORD_RETRY);

    const wakeAt = Math.max(
        now.getTime() + 1000,
        Math.min(
            now.getTime() + scaledMs(MONITOR_MAX_SLEEP_MS),
            assessment.nextThresholdAt !== undefined ? Date.parse(assessment.nextThresholdAt) : Infinity,
        ),
    );
    const timer = context.df.createTimer(new Date(wakeAt));
    const waiters = MONITORED_EVENTS.map((name) => ({ name, task: context.df.waitForExternalEvent(name) }));
    const winner = (yield context.df.Task.any([...waiters.map((w) => w.task), timer])) as df.Task;
    if (!timer.isCompleted) timer.cancel();

    let next: MonitorInput = {
        ...state,
        recordedHealth: assessment.health,
        recordedReasonCodes: reasonCodes,
        generation: state.generation + 1,
    };
    const fired = waiters.find((w) => w.task === winner);
    if (fired) {
        if (fired.name === lifecycleEvents.cancel) {
            const reason = typeof winner.result === 'string' ? winner.result : 'cancelled';
            return { stopped: reason };
        }
        next = applyMonitorEvent(next, fired.name, winner.result);
    }
    context.df.continueAsNew(next);
    return undefined;
}

df.app.orchestration(REPLICATION_MONITOR, replicationMonitorOrchestrator);
