import { randomUUID } from 'node:crypto';
import { customStatusProblem } from './customStatusLimit';
import { createTimer, scheduleCall, scheduleRetryTimer, type Effect, type Episode } from './episode';
import { historyEvent } from './history';
import { ActionType, type OrchestratorAction } from './replayEngine';
import {
    TERMINAL_STATUSES,
    type InstanceMessage,
    type InstanceState,
    type RetriedCall,
    type RuntimeStatus,
} from './store';

export { retryDelayMs, type ActivityWork, type ChildStart, type Effect, type Episode } from './episode';

/**
 * The Durable Task Framework's history rules, as pure functions over an instance's JSON state: which inbox
 * messages one episode takes, how they become history events, how the orchestrator's new actions get their
 * sequence ids, what continueAsNew, completion and failure do. The runtime only runs the orchestrator between
 * `beginEpisode` and `endEpisode` and carries out the effects.
 */

/**
 * How inbox messages reach the orchestrator. `batch` (the default) is what the Azure Storage backend does: every
 * queued message in one episode, up to the control queue's batch size; `single` is one message per episode.
 */
export type DeliveryMode = 'batch' | 'single';

/** The extension's `controlQueueBatchSize` default: messages one episode can take from the control queue. */
export const CONTROL_QUEUE_BATCH_SIZE = 32;

/** Whether a message belongs to the current execution and to a task still pending. */
export function isCurrent(state: InstanceState, message: InstanceMessage): boolean {
    switch (message.kind) {
        case 'TaskCompleted':
        case 'TaskFailed':
        case 'SubOrchestrationCompleted':
        case 'SubOrchestrationFailed':
            return message.executionId === state.executionId && message.taskScheduledId in state.pending;
        case 'TimerFired':
            return message.executionId === state.executionId && message.timerId in state.pending;
        default:
            return true;
    }
}

/**
 * Whether the runtime itself must decide on this message (a failed attempt of a `*WithRetry` call, or a retry
 * timer). Such a message is an episode of its own, so the retry's ids follow the engine's numbering.
 */
function decidesRetry(state: InstanceState, message: InstanceMessage): boolean {
    if (message.kind === 'TaskFailed' || message.kind === 'SubOrchestrationFailed') {
        const pending = state.pending[message.taskScheduledId];
        return pending !== undefined && pending.kind !== 'timer' && pending.retry !== undefined;
    }
    if (message.kind === 'TimerFired') {
        const pending = state.pending[message.timerId];
        return pending?.kind === 'timer' && pending.retry !== undefined;
    }
    return false;
}

/**
 * Takes the next episode's messages from the inbox: stale ones (older executions, cancelled tasks) are dropped
 * on the way. A Terminate is an episode of its own, as is a message the retry rules decide on; otherwise, in
 * batch mode, every current message up to the batch size.
 */
export function takeBatch(state: InstanceState, mode: DeliveryMode, log: (line: string) => void): InstanceMessage[] {
    const batch: InstanceMessage[] = [];
    const limit = mode === 'batch' ? CONTROL_QUEUE_BATCH_SIZE : 1;
    while (state.inbox.length > 0 && batch.length < limit) {
        const message = state.inbox[0]!;
        if (!isCurrent(state, message)) {
            state.inbox.shift();
            log(`${message.kind} for ${state.instanceId} dropped (stale)`);
            continue;
        }
        const alone = message.kind === 'Terminate' || decidesRetry(state, message);
        if (alone && batch.length > 0) break;
        batch.push(state.inbox.shift()!);
        if (alone) break;
    }
    return batch;
}

/** Turns one inbox message into its history event (and, for retries, the runtime's own decisions). */
function applyMessage(episode: Episode, message: InstanceMessage): void {
    const { state, now, newEvents } = episode;
    switch (message.kind) {
        case 'ExecutionStarted':
            newEvents.push(historyEvent.executionStarted(now, state.name, state.input));
            state.runtimeStatus = 'Running';
            break;
        case 'EventRaised':
            newEvents.push(historyEvent.eventRaised(now, message.name, message.input));
            break;
        case 'TaskCompleted':
            delete state.pending[message.taskScheduledId];
            newEvents.push(historyEvent.taskCompleted(now, message.taskScheduledId, message.result));
            break;
        case 'SubOrchestrationCompleted':
            delete state.pending[message.taskScheduledId];
            newEvents.push(historyEvent.subOrchestrationCompleted(now, message.taskScheduledId, message.result));
            break;
        case 'TaskFailed':
        case 'SubOrchestrationFailed': {
            const failed = state.pending[message.taskScheduledId];
            delete state.pending[message.taskScheduledId];
            newEvents.push(
                message.kind === 'TaskFailed'
                    ? historyEvent.taskFailed(now, message.taskScheduledId, message.reason, message.details)
                    : historyEvent.subOrchestrationFailed(
                          now,
                          message.taskScheduledId,
                          message.reason,
                          message.details,
                      ),
            );
            if (failed && failed.kind !== 'timer' && failed.retry) scheduleRetryTimer(episode, failed, failed.retry);
            break;
        }
        case 'TimerFired': {
            const timer = state.pending[message.timerId];
            delete state.pending[message.timerId];
            newEvents.push(historyEvent.timerFired(now, message.timerId, new Date(message.fireAt)));
            const retry = timer?.kind === 'timer' ? timer.retry : undefined;
            if (retry && retry.attempt < retry.options.maxNumberOfAttempts) {
                scheduleCall(episode, retry.call, {
                    options: retry.options,
                    attempt: retry.attempt + 1,
                    firstAttemptAt: retry.firstAttemptAt,
                });
            }
            break;
        }
        case 'Terminate':
            break;
    }
}

/**
 * Starts an episode over the messages `takeBatch` took: OrchestratorStarted stamped `now`, then one event per
 * message (a Terminate batch goes to `terminate` instead: the orchestrator does not run).
 */
export function beginEpisode(
    state: InstanceState,
    batch: InstanceMessage[],
    now: Date,
    log: (line: string) => void,
): Episode {
    const episode: Episode = {
        state,
        now,
        batch,
        newEvents: [historyEvent.orchestratorStarted(now)],
        decisions: [],
        effects: [],
        log,
    };
    for (const message of batch) applyMessage(episode, message);
    return episode;
}

/** Ends the execution: clears its pending work and tells the parent orchestration, if any. */
export function finish(
    state: InstanceState,
    status: RuntimeStatus,
    output: string | undefined,
    now: Date,
    effects: Effect[],
    toParent: { completed?: string; failed?: string },
): void {
    state.runtimeStatus = status;
    state.output = output;
    state.pending = {};
    state.inbox = [];
    state.lastUpdatedTime = now.toISOString();
    const parent = state.parent;
    if (!parent) return;
    const message: InstanceMessage =
        toParent.completed !== undefined
            ? {
                  kind: 'SubOrchestrationCompleted',
                  executionId: parent.executionId,
                  taskScheduledId: parent.taskScheduledId,
                  result: toParent.completed,
              }
            : {
                  kind: 'SubOrchestrationFailed',
                  executionId: parent.executionId,
                  taskScheduledId: parent.taskScheduledId,
                  reason: toParent.failed ?? `Sub-orchestration ${state.instanceId} ended as ${status}`,
                  details: '',
              };
    effects.push({ kind: 'message', instanceId: parent.instanceId, message });
}

/** A Terminate message: the execution ends without running the orchestrator. */
export function terminate(state: InstanceState, reason: string, now: Date): Effect[] {
    const effects: Effect[] = [];
    state.history.push(
        historyEvent.executionTerminated(now, reason),
        historyEvent.executionCompleted(now, 'Terminated', JSON.stringify(reason)),
    );
    finish(state, 'Terminated', JSON.stringify(reason), now, effects, {
        failed: `Orchestration '${state.name}' (${state.instanceId}) was terminated: ${reason}`,
    });
    return effects;
}

/**
 * Gives each new engine action its sequence id and history event, in the order the engine numbered them;
 * cancels timers the orchestrator cancelled since the last episode.
 */
function applyActions(
    episode: Episode,
    actions: OrchestratorAction[],
): { error?: string; continueAsNew?: OrchestratorAction } {
    const { state, now } = episode;
    for (let i = 0; i < Math.min(actions.length, state.actionIds.length); i++) {
        const action = actions[i]!;
        const id = state.actionIds[i];
        if (action.actionType === ActionType.CreateTimer && action.isCanceled && id !== null && id !== undefined) {
            const pending = state.pending[id];
            if (pending?.kind === 'timer' && !pending.fired) delete state.pending[id];
        }
    }
    let continueAsNew: OrchestratorAction | undefined;
    let error: string | undefined;
    for (let i = state.actionIds.length; i < actions.length; i++) {
        const action = actions[i]!;
        const retry =
            action.retryOptions !== undefined
                ? { options: action.retryOptions, attempt: 1, firstAttemptAt: now.toISOString() }
                : undefined;
        switch (action.actionType) {
            case ActionType.CallActivity:
            case ActionType.CallActivityWithRetry: {
                const input = typeof action.input === 'string' ? action.input : JSON.stringify(action.input);
                state.actionIds.push(
                    scheduleCall(episode, { kind: 'activity', name: action.functionName!, input }, retry),
                );
                break;
            }
            case ActionType.CallSubOrchestrator:
            case ActionType.CallSubOrchestratorWithRetry: {
                const call: RetriedCall = {
                    kind: 'subOrchestration',
                    name: action.functionName!,
                    instanceId: action.instanceId ?? '',
                    input: action.input === undefined ? undefined : JSON.stringify(action.input),
                    idWasGiven: !!action.instanceId,
                };
                state.actionIds.push(scheduleCall(episode, call, retry));
                break;
            }
            case ActionType.CreateTimer: {
                const fireAt = new Date(action.fireAt as Date | string);
                state.actionIds.push(createTimer(episode, fireAt, undefined, action.isCanceled === true));
                break;
            }
            case ActionType.WaitForExternalEvent:
                state.actionIds.push(null);
                break;
            case ActionType.ContinueAsNew:
                state.actionIds.push(null);
                continueAsNew = action;
                break;
            default:
                state.actionIds.push(null);
                error ??= `the local durable runtime does not support action type ${action.actionType} (entities and callHttp are not supported)`;
        }
    }
    return { error, continueAsNew };
}

/**
 * Starts a new execution with the new input and an empty history. With the extension's out-of-process shim
 * (`ContinueAsNew(input)`, unprocessed events not preserved) every event of the episode's batch is gone, read
 * or not; messages still queued behind the batch reach the new execution.
 */
function continueAsNew(state: InstanceState, action: OrchestratorAction, now: Date): void {
    state.history.push(historyEvent.executionCompleted(now, 'ContinuedAsNew', undefined));
    state.input = typeof action.input === 'string' ? action.input : JSON.stringify(action.input);
    state.executionId = randomUUID().replace(/-/g, '');
    state.history = [];
    state.actionIds = [];
    state.pending = {};
    state.nextEventId = 0;
    state.runtimeStatus = 'ContinuedAsNew';
    state.executionCount += 1;
    state.inbox = [
        { kind: 'ExecutionStarted' },
        ...state.inbox.filter((m) => m.kind === 'EventRaised' || m.kind === 'Terminate'),
    ];
}

/** The engine waits for ids the runtime never scheduled: on the real host it would wait forever. */
function findHang(state: InstanceState, awaited: number[]): string | undefined {
    const missing = awaited.filter((id) => !(id in state.pending));
    if (missing.length === 0) return undefined;
    return (
        `Orchestration '${state.name}' (${state.instanceId}) waits for task id(s) ${missing.join(', ')} that were never ` +
        `scheduled (pending: ${Object.keys(state.pending).join(', ') || 'none'}); it would hang forever`
    );
}

/** What the orchestrator decided over the episode's history, as the engine reported it. */
export interface EpisodeDecision {
    isDone: boolean;
    actions: OrchestratorAction[];
    output: unknown;
    customStatus: unknown;
    error?: string;
    awaitedTaskIds: number[];
}

/**
 * Records the orchestrator's decision: new actions with their ids, the custom status (the extension's limit),
 * then completion, failure, continueAsNew or a wait. Returns a hang description when the engine waits for ids
 * nobody scheduled, and whether the instance must run again at once (a new execution).
 */
export function endEpisode(episode: Episode, outcome: EpisodeDecision): { hang?: string; runAgain: boolean } {
    const { state, now, effects } = episode;
    for (const e of episode.newEvents) e.IsPlayed = true;
    state.history.push(...episode.newEvents, ...episode.decisions);
    episode.decisions = [];
    state.lastUpdatedTime = now.toISOString();

    let error = outcome.error;
    let continued: OrchestratorAction | undefined;
    if (error === undefined) {
        const customStatus = outcome.customStatus === undefined ? undefined : JSON.stringify(outcome.customStatus);
        error = customStatus === undefined ? undefined : customStatusProblem(customStatus);
        if (error === undefined) {
            state.customStatus = customStatus;
            const result = applyActions(episode, outcome.actions);
            state.history.push(...episode.decisions);
            error = result.error;
            continued = result.continueAsNew;
        }
    }

    if (error !== undefined) {
        const message = `Orchestrator function '${state.name}' failed: ${error}`;
        state.failure = { message: error };
        state.history.push(historyEvent.executionCompleted(now, 'Failed', JSON.stringify(message)));
        finish(state, 'Failed', JSON.stringify(message), now, effects, { failed: message });
        state.history.push(historyEvent.orchestratorCompleted(now));
        return { runAgain: false };
    }
    if (outcome.isDone && continued) {
        continueAsNew(state, continued, now);
        return { runAgain: true };
    }
    if (outcome.isDone) {
        let output: string | undefined;
        try {
            output = outcome.output === undefined ? undefined : JSON.stringify(outcome.output);
        } catch (err) {
            const msg = `Orchestrator function '${state.name}' failed: its output is not JSON: ${err instanceof Error ? err.message : String(err)}`;
            state.failure = { message: msg };
            state.history.push(historyEvent.executionCompleted(now, 'Failed', JSON.stringify(msg)));
            finish(state, 'Failed', JSON.stringify(msg), now, effects, { failed: msg });
            return { runAgain: false };
        }
        state.history.push(historyEvent.executionCompleted(now, 'Completed', output));
        finish(state, 'Completed', output, now, effects, { completed: output ?? 'null' });
        state.history.push(historyEvent.orchestratorCompleted(now));
        return { runAgain: false };
    }
    state.history.push(historyEvent.orchestratorCompleted(now));
    const hang = findHang(state, outcome.awaitedTaskIds);
    if (hang === undefined) delete state.stuck;
    else state.stuck = hang;
    return { hang, runAgain: false };
}

/** Whether the instance has finished for good (until replaced by a new start with the same id). */
export function isFinished(state: InstanceState): boolean {
    return TERMINAL_STATUSES.has(state.runtimeStatus);
}
