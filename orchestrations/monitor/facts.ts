import type { HealthFacts, ReplicationHealth } from '../../shared/health';
import {
    lifecycleEvents,
    type CycleCompleteEvent,
    type LogAppliedEvent,
    type MergeFailedEvent,
    type ProviderErrorEvent,
    type ProviderHeartbeatEvent,
    type ResyncRequiredEvent,
} from '../../shared/lifecycle/instances';
import type { ResynchronizationState } from '../../shared/state/protectedItems';
import { laterInstant } from '../../shared/storage/instants';

/**
 * What the replication monitor knows about a VM, carried from one generation to the next in its input. Facts
 * the tables hold (applied data, recovery points, resync state) are rebuilt from them on every wake, so an
 * event lost to a continueAsNew costs latency only; the others (provider errors, heartbeats) live here and, once
 * recorded, on the protected item.
 */
export interface MonitorInput {
    /** Shape of this input; absent on inputs written before versioning (version 1). See docs/lifecycle.md. */
    version?: number;
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
    /** Version 1 only; dropped on upgrade. */
    recordedReasonCodes?: string[];
    generation: number;
}

/** The input shape this code writes. */
export const MONITOR_INPUT_VERSION = 2;

/**
 * An input of any earlier version in the current shape. Version 1 (no `version`) has the same facts; it only
 * carried the reason codes of the last record, which the protected item already holds.
 */
export function upgradeMonitorInput(input: MonitorInput): MonitorInput {
    if ((input.version ?? 1) >= MONITOR_INPUT_VERSION) return input;
    const { recordedReasonCodes: _dropped, ...rest } = input;
    return { ...rest, version: MONITOR_INPUT_VERSION };
}

function atOrAfter(t: string, since: string): boolean {
    return Date.parse(t) >= Date.parse(since);
}

/**
 * The monitor's state after one event. Pure. Events resolved together reach it in a fixed order rather than in
 * arrival order, so every clearing rule compares the event's own time with the fact it clears.
 */
export function applyMonitorEvent(state: MonitorInput, name: string, payload: unknown): MonitorInput {
    const next: MonitorInput = { ...state };
    switch (name) {
        case lifecycleEvents.logApplied: {
            const e = payload as LogAppliedEvent;
            const disks = { ...(state.diskCapturedAt ?? {}) };
            disks[e.diskId] = laterInstant(disks[e.diskId], e.capturedAt);
            next.diskCapturedAt = disks;
            const vmConsistent = vmCapturedAt(state.diskIds, disks);
            if (vmConsistent !== undefined) next.lastCapturedAt = laterInstant(state.lastCapturedAt, vmConsistent);
            const appliedAt = e.appliedAt ?? e.capturedAt;
            if (state.mergeFailure?.diskId === e.diskId && atOrAfter(appliedAt, state.mergeFailure.since)) {
                delete next.mergeFailure;
            }
            if (state.providerFailure && atOrAfter(appliedAt, state.providerFailure.since)) delete next.providerFailure;
            // Data the provider captured is as good a sign of life as a heartbeat.
            next.lastHeartbeatAt = laterInstant(state.lastHeartbeatAt, e.capturedAt);
            break;
        }
        case lifecycleEvents.cycleComplete: {
            const e = payload as CycleCompleteEvent;
            next.lastCapturedAt = laterInstant(state.lastCapturedAt, e.capturedAt);
            if (!state.lastRecoveryPoint || Date.parse(e.capturedAt) >= Date.parse(state.lastRecoveryPoint.at)) {
                next.lastRecoveryPoint = { id: e.recoveryPointId, at: e.capturedAt };
            }
            if (state.mergeFailure && atOrAfter(e.capturedAt, state.mergeFailure.since)) delete next.mergeFailure;
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
            next.lastHeartbeatAt = laterInstant(state.lastHeartbeatAt, e.at);
            break;
        }
        case lifecycleEvents.cycleUploaded: {
            // The provider channel's CycleUploaded payload: only its time matters here (the provider is alive).
            const e = payload as { at?: unknown } | undefined;
            if (typeof e?.at === 'string') {
                next.lastHeartbeatAt = laterInstant(state.lastHeartbeatAt, e.at);
                if (state.providerFailure && atOrAfter(e.at, state.providerFailure.since)) delete next.providerFailure;
            }
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

/** The VM-consistent capture time: the oldest of the disks' newest, once every disk has one. */
export function vmCapturedAt(diskIds: string[], disks: Record<string, string | undefined>): string | undefined {
    if (diskIds.length === 0 || !diskIds.every((d) => disks[d] !== undefined)) return undefined;
    return diskIds.map((d) => disks[d] as string).reduce((min, t) => (Date.parse(t) < Date.parse(min) ? t : min));
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

/** What the tables say about a VM at one wake (see `readTableFacts`). */
export interface TableFacts {
    /** The protected item is gone: protection was disabled, the monitor stops. */
    itemMissing: boolean;
    /** Per disk, capturedAt of the newest log applied to its replica. */
    diskCapturedAt: Record<string, string>;
    /** A disk waiting for a resync, as its row says. */
    diskResync?: { reason: string; detail: string; at: string };
    latestRecoveryPoint?: { id: string; at: string };
    latestResync?: { state: 'Running' | 'Completed' | 'RolledBack'; startedAt: string };
}

/**
 * The carried state brought up to what the tables hold. Tables only add what events would have said (newer data
 * applied, a newer recovery point, a resync required or under way) or clear a resync request that a completed
 * resync ended; facts only events carry stay as they are.
 */
export function mergeTableFacts(state: MonitorInput, tables: TableFacts): MonitorInput {
    const next: MonitorInput = { ...state };
    const disks = { ...(state.diskCapturedAt ?? {}) };
    for (const [diskId, at] of Object.entries(tables.diskCapturedAt)) {
        if (state.diskIds.includes(diskId)) disks[diskId] = laterInstant(disks[diskId], at);
    }
    if (Object.keys(disks).length > 0) next.diskCapturedAt = disks;
    const vmConsistent = vmCapturedAt(state.diskIds, disks);
    if (vmConsistent !== undefined) next.lastCapturedAt = laterInstant(next.lastCapturedAt, vmConsistent);
    const point = tables.latestRecoveryPoint;
    if (point && (!next.lastRecoveryPoint || Date.parse(point.at) > Date.parse(next.lastRecoveryPoint.at))) {
        next.lastRecoveryPoint = point;
        next.lastCapturedAt = laterInstant(next.lastCapturedAt, point.at);
    }
    const run = tables.latestResync;
    if (tables.diskResync) {
        if (!next.resyncRequired) next.resyncRequired = tables.diskResync;
        const underWay = run?.state === 'Running' && atOrAfter(run.startedAt, tables.diskResync.at);
        next.resynchronizationState = underWay ? 'ResynchronizationInitiated' : 'ResynchronizationRequired';
    } else if (next.resyncRequired && run?.state === 'Completed' && atOrAfter(run.startedAt, next.resyncRequired.at)) {
        delete next.resyncRequired;
        next.resynchronizationState = 'ResynchronizationCompleted';
    } else if (next.resyncRequired && run?.state === 'Running' && atOrAfter(run.startedAt, next.resyncRequired.at)) {
        next.resynchronizationState = 'ResynchronizationInitiated';
    }
    return next;
}
