import * as df from 'durable-functions';
import { scaledMs } from '../shared/durableTime';
import { assessReplicationHealth, HealthAssessment, ReplicationHealth } from '../shared/health';
import { fitCustomStatus } from '../shared/lifecycle/customStatus';
import { lifecycleEvents } from '../shared/lifecycle/instances';
import { EventWaiters } from './lifecycle/eventWaiters';
import { RECORD_RETRY } from './lifecycleActivities';
import {
    applyMonitorEvent,
    healthFactsOf,
    MONITOR_INPUT_VERSION,
    upgradeMonitorInput,
    type MonitorInput,
} from './monitor/facts';
import {
    recordReplicationStatusActivity,
    type MonitorWake,
    type MonitorWakeResult,
    type ReplicationStatusRecord,
} from './monitor/refresh';

export { applyMonitorEvent, healthFactsOf, type MonitorInput } from './monitor/facts';
export { recordReplicationStatus, recordReplicationStatusActivity } from './monitor/refresh';

/**
 * The replication monitor of one protected VM (instance `monitor:{vmId}`): it listens to the merge and the
 * provider, measures RPO, assesses health and records changes. Each generation has one deadline and handles
 * events until it passes or MONITOR_EVENTS_PER_GENERATION were handled, then continues as new, so its history
 * stays bounded however long the VM stays protected.
 *
 * The engine delivers queued events in batches, and continueAsNew loses the unread rest of a batch; so every
 * event a wait resolves is handled before the generation ends, and every wake rebuilds the facts the tables
 * hold (applied data, recovery points, resync state): an event lost or late costs latency, never correctness.
 */
export const REPLICATION_MONITOR = 'replicationMonitor';

/** A wake-up happens at least this often, so RPO is reported even when nothing arrives. */
export const MONITOR_MAX_SLEEP_MS = 15 * 60_000;

/** Events one generation handles before it continues as new (bounds its history to a few hundred events). */
export const MONITOR_EVENTS_PER_GENERATION = 20;

/** The custom status: what an operator sees on the instance. */
export interface MonitorStatus {
    health: ReplicationHealth;
    /** Null while the VM has no applied data (shared/health.ts rpoSecondsAt). */
    rpoSeconds: number | null;
    reasons: string[];
    lastCapturedAt?: string;
    generation: number;
}

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

/** When the monitor must look again: the next threshold, at most MONITOR_MAX_SLEEP_MS away, at least 1 s. */
function wakeTime(nowMs: number, assessment: HealthAssessment): number {
    const threshold = assessment.nextThresholdAt !== undefined ? Date.parse(assessment.nextThresholdAt) : Infinity;
    return Math.max(nowMs + 1000, Math.min(nowMs + scaledMs(MONITOR_MAX_SLEEP_MS), threshold));
}

/**
 * The first wake of a generation begun by the previous version replays its record call, which returned
 * nothing: assess here as that code did, from the carried state.
 */
function legacyWake(state: MonitorInput, at: string): MonitorWakeResult {
    const assessment = assessReplicationHealth(healthFactsOf(state, at));
    return { state: { ...state, recordedHealth: assessment.health }, assessment, itemMissing: false };
}

export function* replicationMonitorOrchestrator(
    context: df.OrchestrationContext,
): Generator<df.Task, { stopped: string } | undefined, unknown> {
    let state = upgradeMonitorInput(context.df.getInput<MonitorInput>());
    let wakes = 0;
    let handled = 0;

    function* wake(): Generator<df.Task, MonitorWakeResult, unknown> {
        const at = context.df.currentUtcDateTime.toISOString();
        const input: MonitorWake = { version: MONITOR_INPUT_VERSION, state, at, wake: wakes++ };
        const result = (yield recordReplicationStatusActivity(input).withRetry(RECORD_RETRY)) as
            MonitorWakeResult | null | undefined;
        const outcome = result ?? legacyWake(state, at);
        state = outcome.state;
        const status: MonitorStatus = {
            health: outcome.assessment.health,
            rpoSeconds: outcome.assessment.rpoSeconds,
            reasons: outcome.assessment.reasons.map((r) => r.code),
            generation: state.generation,
        };
        if (state.lastCapturedAt !== undefined) status.lastCapturedAt = state.lastCapturedAt;
        context.df.setCustomStatus(fitCustomStatus(status));
        return outcome;
    }

    // Every waiter yielded in this generation is read (orchestrations/lifecycle/eventWaiters.ts says why).
    const waiters = new EventWaiters(context);
    const freshWaiters = (): df.Task[] => waiters.fresh(MONITORED_EVENTS);
    /** Applies every event a waiter holds (several when they arrived in one batch); a Cancel stops the monitor. */
    const drain = (): { applied: number; stop?: string } => {
        let applied = 0;
        for (let event = waiters.take(); event; event = waiters.take()) {
            if (event.name === lifecycleEvents.cancel) {
                return { applied, stop: typeof event.payload === 'string' ? event.payload : 'cancelled' };
            }
            state = applyMonitorEvent(state, event.name, event.payload);
            applied++;
        }
        return { applied };
    };

    let outcome = yield* wake();
    if (outcome.itemMissing) return { stopped: 'the protected item is gone' };
    const deadline = wakeTime(context.df.currentUtcDateTime.getTime(), outcome.assessment);
    let timerFired = false;
    for (;;) {
        // Events that came while the last wake ran are already in waiters of earlier rounds: read them before
        // waiting again, or they would wait for the next event.
        const drained = drain();
        if (drained.stop !== undefined) return { stopped: drained.stop };
        handled += drained.applied;
        if (drained.applied > 0) {
            outcome = yield* wake();
            if (outcome.itemMissing) return { stopped: 'the protected item is gone' };
        }
        const nowMs = context.df.currentUtcDateTime.getTime();
        const wantsEarlier = wakeTime(nowMs, outcome.assessment) < deadline;
        if (timerFired || nowMs >= deadline || handled >= MONITOR_EVENTS_PER_GENERATION || wantsEarlier) break;
        if (drained.applied > 0) continue;
        // Each round yields fresh tasks: a timer yielded again in a second Task.any would be scheduled a second
        // time (the SDK lists its action again). All rounds share the generation's deadline, so a cancelled
        // timer left scheduled by the backend fires when the generation ends anyway.
        const timer = context.df.createTimer(new Date(deadline));
        yield context.df.Task.any([...freshWaiters(), timer]);
        timerFired = timer.isCompleted;
        if (!timerFired) timer.cancel();
    }
    // Events that arrived with the last completion are in the waiters: carry them, the next wake records them.
    const last = drain();
    if (last.stop !== undefined) return { stopped: last.stop };
    // More events of one name than open waiters of it (four LogApplied in one batch) are held by the SDK until a
    // waiter of that name is yielded; continueAsNew would drop them. Yield fresh waiters with an immediate timer
    // until a round brings nothing but the timer; what they bring is carried to the next generation.
    for (;;) {
        const flush = context.df.createTimer(context.df.currentUtcDateTime);
        yield context.df.Task.any([...freshWaiters(), flush]);
        const more = drain();
        if (more.stop !== undefined) return { stopped: more.stop };
        if (!flush.isCompleted) flush.cancel();
        if (more.applied === 0) break;
    }
    context.df.continueAsNew({ ...state, version: MONITOR_INPUT_VERSION, generation: state.generation + 1 });
    return undefined;
}

df.app.orchestration(REPLICATION_MONITOR, replicationMonitorOrchestrator);

export type { ReplicationStatusRecord };
