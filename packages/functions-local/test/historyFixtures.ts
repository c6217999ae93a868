import { eventTypeName, type HistoryEventRecord } from '../src/durable/history';
import {
    beginEpisode,
    endEpisode,
    takeBatch,
    type DeliveryMode,
    type Effect,
    type EpisodeDecision,
} from '../src/durable/historyRules';
import { ActionType, type OrchestratorAction } from '../src/durable/replayEngine';
import { newInstance, type InstanceMessage, type InstanceState } from '../src/durable/store';

/**
 * Synthetic histories for the history rules' tests: an instance state, the messages of one episode in, what the
 * orchestrator decided (as the replay engine would report it) in, then the history events, the state and the
 * effects out. No orchestrator runs and nothing is stored.
 */

export const T0 = new Date('2025-01-01T00:00:00.000Z');
export const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

export function decision(overrides: Partial<EpisodeDecision> = {}): EpisodeDecision {
    return { isDone: false, actions: [], output: undefined, customStatus: undefined, awaitedTaskIds: [], ...overrides };
}

export const activity = (name: string, input?: unknown): OrchestratorAction => ({
    actionType: ActionType.CallActivity,
    functionName: name,
    input,
});
export const timer = (fireAt: Date, isCanceled = false): OrchestratorAction => ({
    actionType: ActionType.CreateTimer,
    fireAt,
    isCanceled,
});
export const waitFor = (name: string): OrchestratorAction => ({
    actionType: ActionType.WaitForExternalEvent,
    externalEventName: name,
});

export interface EpisodeResult {
    batch: InstanceMessage[];
    /** The events this episode appended, by type name. */
    events: string[];
    appended: HistoryEventRecord[];
    effects: Effect[];
    hang?: string;
    runAgain: boolean;
    logs: string[];
}

/** One episode as the runtime drives it: take the batch, begin, let the orchestrator "decide", end. */
export function runEpisode(
    state: InstanceState,
    now: Date,
    decide: EpisodeDecision,
    mode: DeliveryMode = 'batch',
    duringEpisode?: () => void,
): EpisodeResult {
    const logs: string[] = [];
    const log = (line: string) => logs.push(line);
    const before = state.history.length;
    const batch = takeBatch(state, mode, log);
    if (batch[0]?.kind === 'Terminate') throw new Error('a Terminate batch goes to terminate()');
    const episode = beginEpisode(state, batch, now, log);
    duringEpisode?.();
    const { hang, runAgain } = endEpisode(episode, decide);
    const appended = runAgain ? [] : state.history.slice(before);
    return {
        batch,
        events: appended.map((e) => eventTypeName(e.EventType)),
        appended,
        effects: episode.effects,
        ...(hang !== undefined ? { hang } : {}),
        runAgain,
        logs,
    };
}

export function started(name = 'Orch', input: unknown = { n: 1 }): InstanceState {
    return newInstance(T0, 'inst', name, JSON.stringify(input));
}

/** A completion of task `taskScheduledId`, of the current execution unless `executionId` says otherwise. */
export function completion(
    state: InstanceState,
    taskScheduledId: number,
    result: unknown,
    executionId = state.executionId,
): InstanceMessage {
    return { kind: 'TaskCompleted', executionId, taskScheduledId, result: JSON.stringify(result) };
}

export function failure(
    state: InstanceState,
    taskScheduledId: number,
    reason = 'boom',
    executionId = state.executionId,
): InstanceMessage {
    return { kind: 'TaskFailed', executionId, taskScheduledId, reason, details: 'stack' };
}

export function fired(state: InstanceState, timerId: number): InstanceMessage {
    const pending = state.pending[timerId];
    const fireAt = pending?.kind === 'timer' ? pending.fireAt : T0.toISOString();
    return { kind: 'TimerFired', executionId: state.executionId, timerId, fireAt };
}

export const raised = (name: string, input: unknown): InstanceMessage => ({
    kind: 'EventRaised',
    name,
    input: JSON.stringify(input),
});
