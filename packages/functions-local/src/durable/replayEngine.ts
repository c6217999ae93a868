import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import type { HistoryEventRecord } from './history';

/** Action types of durable-functions' out-of-process protocol (`ActionType`). */
export const ActionType = {
    CallActivity: 0,
    CallActivityWithRetry: 1,
    CallSubOrchestrator: 2,
    CallSubOrchestratorWithRetry: 3,
    ContinueAsNew: 4,
    CreateTimer: 5,
    WaitForExternalEvent: 6,
    CallEntity: 7,
    CallHttp: 8,
    SignalEntity: 9,
    WhenAny: 11,
    WhenAll: 12,
    LockEntities: 13,
    ReleaseEntities: 14,
} as const;

/** The retry options an orchestrator passes to `callActivityWithRetry` / `callSubOrchestratorWithRetry`. */
export interface RetryOptionsLike {
    firstRetryIntervalInMilliseconds: number;
    maxNumberOfAttempts: number;
    backoffCoefficient?: number;
    maxRetryIntervalInMilliseconds?: number;
    retryTimeoutInMilliseconds?: number;
}

/** One action the orchestrator asked for, as the package emits it (schema V1, compound actions flattened). */
export interface OrchestratorAction {
    actionType: number;
    functionName?: string;
    input?: unknown;
    instanceId?: string;
    fireAt?: Date | string;
    isCanceled?: boolean;
    retryOptions?: RetryOptionsLike;
    externalEventName?: string;
}

/** What one run of the orchestrator over a history decided. */
export interface EpisodeOutcome {
    /** The orchestrator returned or called continueAsNew. */
    isDone: boolean;
    /** Every action since the execution started, in the order the engine numbered them. */
    actions: OrchestratorAction[];
    output: unknown;
    customStatus: unknown;
    /** Set when the orchestrator threw: the message of its error. */
    error?: string;
    /** Sequence ids of the tasks the engine still waits for (activities, timers, sub-orchestrations, retries). */
    awaitedTaskIds: number[];
    /** Names of the external events the engine waits for. */
    awaitedEvents: string[];
}

/** What the orchestration trigger carries, as the extension sends it. */
export interface OrchestrationTriggerPayload {
    history: HistoryEventRecord[];
    input: unknown;
    instanceId: string;
    isReplaying: boolean;
    parentInstanceId: string | undefined;
    upperSchemaVersion: number;
    longRunningTimerIntervalDuration: string;
    maximumShortTimerDuration: string;
    defaultHttpAsyncRequestSleepTimeMillseconds: number;
}

interface RawState {
    isDone?: boolean;
    actions?: unknown;
    output?: unknown;
    customStatus?: unknown;
    error?: string;
}

const OUT_OF_PROC_LABEL = '$OutOfProcData$:';

function flattenActions(actions: unknown): OrchestratorAction[] {
    const flat: OrchestratorAction[] = [];
    const visit = (value: unknown): void => {
        if (Array.isArray(value)) {
            for (const item of value) visit(item);
            return;
        }
        if (!value || typeof value !== 'object') return;
        const action = value as OrchestratorAction & { compoundActions?: unknown };
        if (action.actionType === ActionType.WhenAll || action.actionType === ActionType.WhenAny) {
            visit(action.compoundActions);
        } else {
            flat.push(action);
        }
    };
    visit(actions);
    return flat;
}

interface EngineTask {
    actionObj?: { isCanceled?: boolean } | string;
}
interface EngineExecutor {
    openTasks?: Record<string, EngineTask>;
    openEvents?: Record<string, unknown[]>;
}

/** Reads what the package's executor still waits for; it is not public API, so read defensively. */
function awaitedWork(context: InvocationContext): { taskIds: number[]; events: string[] } {
    const df = (context as unknown as { df?: { taskOrchestratorExecutor?: EngineExecutor } }).df;
    const executor = df?.taskOrchestratorExecutor;
    const taskIds: number[] = [];
    for (const [key, task] of Object.entries(executor?.openTasks ?? {})) {
        const id = Number(key);
        if (!Number.isInteger(id)) continue;
        const action = task.actionObj;
        // A cancelled timer stays open in the engine but nothing waits for it any more.
        if (action && typeof action === 'object' && action.isCanceled === true) continue;
        taskIds.push(id);
    }
    const events = Object.entries(executor?.openEvents ?? {})
        .filter(([, waiters]) => waiters.length > 0)
        .map(([name]) => name);
    return { taskIds: taskIds.sort((a, b) => a - b), events };
}

/**
 * Runs a registered orchestrator (the listener `df.app.orchestration` registered) once over a history, as the
 * Functions host does on each episode, and reports its decisions.
 */
export async function runOrchestratorEpisode(
    handler: (...args: unknown[]) => unknown,
    payload: OrchestrationTriggerPayload,
    functionName: string,
    log: (line: string) => void,
): Promise<EpisodeOutcome> {
    const context = new InvocationContext({
        functionName,
        invocationId: randomUUID(),
        logHandler: (level, ...args) => {
            // The real host suppresses replayed log lines only when asked; keep them, tagged.
            log(`[${functionName} ${payload.instanceId}] ${level}: ${args.map(String).join(' ')}`);
        },
        options: { trigger: { type: 'orchestrationTrigger', name: 'context' } },
    });
    let state: RawState;
    try {
        state = (await handler(payload, context)) as RawState;
    } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        const at = message.indexOf(OUT_OF_PROC_LABEL);
        if (at < 0) {
            // Not the engine's failure report: the engine itself broke (or the handler is not an orchestrator).
            return {
                isDone: false,
                actions: [],
                output: undefined,
                customStatus: undefined,
                error: message,
                awaitedTaskIds: [],
                awaitedEvents: [],
            };
        }
        let reported: RawState = {};
        try {
            reported = JSON.parse(message.slice(at + OUT_OF_PROC_LABEL.length)) as RawState;
        } catch {
            // Keep the message; the state part is only used for the custom status.
        }
        const errorMessage = (reported.error ?? message.slice(0, at)).replace(/\s+$/, '');
        return {
            isDone: false,
            actions: flattenActions(reported.actions),
            output: undefined,
            customStatus: reported.customStatus,
            error: errorMessage,
            awaitedTaskIds: [],
            awaitedEvents: [],
        };
    }
    if (!state || typeof state !== 'object') {
        return {
            isDone: false,
            actions: [],
            output: undefined,
            customStatus: undefined,
            error: `Orchestrator '${functionName}' returned no orchestrator state; is it registered with df.app.orchestration?`,
            awaitedTaskIds: [],
            awaitedEvents: [],
        };
    }
    const awaited = awaitedWork(context);
    return {
        isDone: state.isDone === true,
        actions: flattenActions(state.actions),
        output: state.output,
        customStatus: state.customStatus,
        error: state.error,
        awaitedTaskIds: awaited.taskIds,
        awaitedEvents: awaited.events,
    };
}
