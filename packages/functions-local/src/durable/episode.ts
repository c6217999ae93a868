import { historyEvent, type HistoryEventRecord } from './history';
import type { RetryOptionsLike } from './replayEngine';
import type { InstanceMessage, InstanceState, PendingTask, RetriedCall, RetryProgress } from './store';

/**
 * One episode of an instance and the history rules' scheduling: how an activity, a sub-orchestration or a timer
 * takes the next sequence id, its history event, its pending task and the effect the runtime carries out, and
 * when a `*WithRetry` call waits on a retry timer. historyRules.ts drives episodes with them.
 */

/** A completion or timer the orchestrator is waiting for, with the task id it must carry. */
export interface ActivityWork {
    instanceId: string;
    executionId: string;
    taskScheduledId: number;
    name: string;
    input: string | undefined;
}

export interface ChildStart {
    parent: { instanceId: string; executionId: string; taskScheduledId: number };
    name: string;
    instanceId: string;
    input: string | undefined;
}

/** What an episode asks the runtime to do once the instance is saved. */
export type Effect =
    | { kind: 'activity'; work: ActivityWork }
    | { kind: 'startChild'; child: ChildStart }
    | { kind: 'timer'; instanceId: string; executionId: string; timerId: number; fireAtMs: number }
    | { kind: 'message'; instanceId: string; message: InstanceMessage };

/** What one episode works on, collected before the orchestrator runs. */
export interface Episode {
    state: InstanceState;
    now: Date;
    /** The messages taken from the inbox for this episode (the batch). */
    batch: InstanceMessage[];
    /** OrchestratorStarted and the new events of the batch. */
    newEvents: HistoryEventRecord[];
    /** Events the runtime decides itself (retry timers and retried calls), recorded after the new events. */
    decisions: HistoryEventRecord[];
    effects: Effect[];
    log: (line: string) => void;
}

/** The delay the Durable Task Framework waits before retry `attempt + 1`, or undefined when it gives up. */
export function retryDelayMs(options: RetryOptionsLike, failedAttempt: number, firstAttemptAt: Date, now: Date) {
    const timeout = options.retryTimeoutInMilliseconds;
    if (timeout !== undefined && timeout > 0 && now.getTime() >= firstAttemptAt.getTime() + timeout) return undefined;
    const backoff =
        options.backoffCoefficient !== undefined && options.backoffCoefficient > 0 ? options.backoffCoefficient : 1;
    const delay = options.firstRetryIntervalInMilliseconds * Math.pow(backoff, failedAttempt - 1);
    const cap = options.maxRetryIntervalInMilliseconds;
    return cap !== undefined && cap > 0 && delay >= cap ? cap : delay;
}

/** Creates a timer under the next id (a cancelled one is recorded, nothing waits for it). */
export function createTimer(
    episode: Episode,
    fireAt: Date,
    retry?: RetryProgress & { call: RetriedCall },
    cancelled = false,
): number {
    const { state, now } = episode;
    const id = state.nextEventId++;
    episode.decisions.push(historyEvent.timerCreated(now, id, fireAt));
    if (!cancelled) {
        state.pending[id] = { kind: 'timer', fireAt: fireAt.toISOString(), fired: false, ...(retry ? { retry } : {}) };
        episode.effects.push({
            kind: 'timer',
            instanceId: state.instanceId,
            executionId: state.executionId,
            timerId: id,
            fireAtMs: fireAt.getTime(),
        });
    }
    return id;
}

/** Schedules an activity or a sub-orchestration under the next id. */
export function scheduleCall(episode: Episode, call: RetriedCall, retry?: RetryProgress): number {
    const { state, now } = episode;
    const id = state.nextEventId++;
    if (call.kind === 'activity') {
        episode.decisions.push(historyEvent.taskScheduled(now, id, call.name, call.input));
        state.pending[id] = { kind: 'activity', name: call.name, input: call.input, ...(retry ? { retry } : {}) };
        episode.effects.push({
            kind: 'activity',
            work: {
                instanceId: state.instanceId,
                executionId: state.executionId,
                taskScheduledId: id,
                name: call.name,
                input: call.input,
            },
        });
        return id;
    }
    // Without an id, each attempt is a new child; the host derives it from the parent and the task id.
    const childId = call.idWasGiven ? call.instanceId : `${state.instanceId}:${id}`;
    episode.decisions.push(historyEvent.subOrchestrationCreated(now, id, call.name, childId, call.input));
    state.pending[id] = {
        kind: 'subOrchestration',
        name: call.name,
        instanceId: childId,
        input: call.input,
        idWasGiven: call.idWasGiven,
        ...(retry ? { retry } : {}),
    };
    episode.effects.push({
        kind: 'startChild',
        child: {
            parent: { instanceId: state.instanceId, executionId: state.executionId, taskScheduledId: id },
            name: call.name,
            instanceId: childId,
            input: call.input,
        },
    });
    return id;
}

/**
 * After a failed attempt of a `*WithRetry` call, the Durable Task Framework waits on a durable timer — also
 * after the last attempt, before the failure reaches the orchestrator. The timer takes the next id.
 */
export function scheduleRetryTimer(
    episode: Episode,
    failed: Exclude<PendingTask, { kind: 'timer' }>,
    retry: RetryProgress,
) {
    const delay = retryDelayMs(retry.options, retry.attempt, new Date(retry.firstAttemptAt), episode.now);
    if (delay === undefined) {
        // The framework gives up without a timer; the JavaScript engine then waits forever (reported as a hang).
        episode.log(`${episode.state.instanceId}: retry timeout of ${failed.name} expired; no retry timer`);
        return;
    }
    const call: RetriedCall =
        failed.kind === 'activity'
            ? { kind: 'activity', name: failed.name, input: failed.input }
            : {
                  kind: 'subOrchestration',
                  name: failed.name,
                  instanceId: failed.instanceId,
                  input: failed.input,
                  idWasGiven: failed.idWasGiven,
              };
    createTimer(episode, new Date(episode.now.getTime() + delay), { ...retry, call });
}
