import * as df from 'durable-functions';
import { InvocationContext } from '@azure/functions';
import { HvrError } from '../../shared/errors';
import { assessReplicationHealth, HEALTH_METRICS, HealthAssessment, ReplicationHealth } from '../../shared/health';
import { listResyncRuns } from '../../shared/resync/runs';
import { listReplicaDisks } from '../../shared/state/disks';
import { appendEvent } from '../../shared/state/events';
import {
    getProtectedItem,
    ProtectedItemChanges,
    ResynchronizationState,
    StateScope,
    updateProtectedItem,
} from '../../shared/state/protectedItems';
import { getLatestRecoveryPoint } from '../../shared/state/recoveryPoints';
import { appendRpoSample } from '../../shared/state/rpoHistory';
import { ports } from '../../shared/ports';
import { healthFactsOf, mergeTableFacts, MONITOR_INPUT_VERSION, type MonitorInput, type TableFacts } from './facts';

/** What one wake of the monitor records (also the whole input of the activity before input versioning). */
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
    /** The wake within the generation, so each health change has its own event id. */
    wake?: number;
}

/**
 * Emits the RPO metric and records an RPO sample every wake-up; when something the operator sees changed, writes the protected item,
 * and on a health change emits ReplicationHealthChanged and an event.
 */
export async function recordReplicationStatus(
    record: ReplicationStatusRecord,
    context: InvocationContext,
): Promise<void> {
    const deps = ports();
    const dims = { vmId: record.vmId, siteId: record.siteId };
    const rpoSeconds = record.assessment.rpoSeconds;
    if (rpoSeconds !== null) deps.metrics.emit(context, HEALTH_METRICS.rpoSeconds, rpoSeconds, dims);
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
                return differs ? { ...visible, rpoSeconds: rpoSeconds ?? undefined } : undefined;
            },
            record.at,
        );
        // The console's RPO chart: one sample per wake, kept a day (only while the item exists).
        if (rpoSeconds !== null) await appendRpoSample(scope, record.vmId, { at: record.at, rpoSeconds });
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
            eventId: record.wake ? `health:${record.generation}.${record.wake}` : `health:${record.generation}`,
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

/** Reads what the tables hold about a VM's replication: its disk rows, newest recovery point, newest resync. */
export async function readTableFacts(scope: StateScope, vmId: string): Promise<TableFacts> {
    const [item, disks, point, runs] = await Promise.all([
        getProtectedItem(scope, vmId),
        listReplicaDisks(scope, vmId),
        getLatestRecoveryPoint(scope, vmId),
        listResyncRuns(scope, vmId),
    ]);
    const facts: TableFacts = { itemMissing: item === undefined, diskCapturedAt: {} };
    for (const { disk } of disks) {
        if (disk.lastCapturedAt !== undefined) facts.diskCapturedAt[disk.diskId] = disk.lastCapturedAt;
        if (disk.state === 'ResyncRequired' && !facts.diskResync) {
            facts.diskResync = {
                reason: disk.resyncReason ?? 'Unknown',
                detail: disk.resyncDetail ?? `disk ${disk.diskId} needs resynchronization`,
                at: disk.resyncRequiredAt ?? disk.updatedAt,
            };
        }
    }
    if (point) facts.latestRecoveryPoint = { id: point.recoveryPointId, at: point.capturedAt };
    const newest = [...runs].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt))[0];
    if (newest) facts.latestResync = { state: newest.state, startedAt: newest.startedAt };
    return facts;
}

/** One wake of the monitor: its carried state, the orchestration's time, the wake's number in the generation. */
export interface MonitorWake {
    version: number;
    state: MonitorInput;
    at: string;
    wake: number;
}

export interface MonitorWakeResult {
    /** The state rebuilt from the tables, with `recordedHealth` set to what was recorded. */
    state: MonitorInput;
    assessment: HealthAssessment;
    itemMissing: boolean;
}

/** Rebuilds the monitor's facts from the tables, assesses health at the wake's time and records it. */
export async function refreshReplicationStatus(
    wake: MonitorWake,
    context: InvocationContext,
): Promise<MonitorWakeResult> {
    const tables = await readTableFacts(ports().state(), wake.state.vmId);
    const state = mergeTableFacts(wake.state, tables);
    const assessment = assessReplicationHealth(healthFactsOf(state, wake.at));
    if (tables.itemMissing) return { state, assessment, itemMissing: true };
    const record: ReplicationStatusRecord = {
        vmId: state.vmId,
        siteId: state.siteId,
        at: wake.at,
        assessment,
        generation: state.generation,
        wake: wake.wake,
    };
    if (state.recordedHealth !== undefined) record.previousHealth = state.recordedHealth;
    if (state.lastCapturedAt !== undefined) record.lastCapturedAt = state.lastCapturedAt;
    if (state.lastRecoveryPoint) record.lastRecoveryPoint = state.lastRecoveryPoint;
    if (state.resynchronizationState !== undefined) {
        record.resynchronizationState = state.resynchronizationState;
        if (state.resyncRequired) record.resyncReason = state.resyncRequired.reason;
    }
    await recordReplicationStatus(record, context);
    return { state: { ...state, recordedHealth: assessment.health }, assessment, itemMissing: false };
}

function isWake(input: unknown): input is MonitorWake {
    return typeof input === 'object' && input !== null && typeof (input as MonitorWake).version === 'number';
}

/**
 * Keeps its name across versions: a generation begun by the previous code replays its first call under this
 * name. A call that code scheduled (a ReplicationStatusRecord) is still recorded as it asked, returning nothing.
 */
export const recordReplicationStatusActivity = df.app.activity('recordReplicationStatus', {
    handler: async (input: unknown, context: InvocationContext): Promise<MonitorWakeResult | undefined> => {
        if (isWake(input)) return refreshReplicationStatus(input, context);
        await recordReplicationStatus(input as ReplicationStatusRecord, context);
        return undefined;
    },
});

export { MONITOR_INPUT_VERSION };
