import { randomUUID } from 'node:crypto';
import { LocalPlatformError } from '../errors';
import type { HistoryEventRecord } from './history';
import type { RetryOptionsLike } from './replayEngine';

export type RuntimeStatus = 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Terminated' | 'ContinuedAsNew';

/** Statuses from which an instance never moves again (until replaced by a new start with the same id). */
export const TERMINAL_STATUSES: ReadonlySet<RuntimeStatus> = new Set<RuntimeStatus>([
    'Completed',
    'Failed',
    'Terminated',
]);

/** A message for an instance that is not yet part of its history (the control queue of the real backend). */
export type InstanceMessage =
    | { kind: 'ExecutionStarted' }
    | { kind: 'TaskCompleted'; executionId: string; taskScheduledId: number; result: string }
    | { kind: 'TaskFailed'; executionId: string; taskScheduledId: number; reason: string; details: string }
    | { kind: 'TimerFired'; executionId: string; timerId: number; fireAt: string }
    | { kind: 'EventRaised'; name: string; input: string | undefined }
    | { kind: 'SubOrchestrationCompleted'; executionId: string; taskScheduledId: number; result: string }
    | { kind: 'SubOrchestrationFailed'; executionId: string; taskScheduledId: number; reason: string; details: string }
    | { kind: 'Terminate'; reason: string };

/** Progress of a `*WithRetry` call across its attempts. */
export interface RetryProgress {
    options: RetryOptionsLike;
    /** 1-based number of the attempt that is running (or, on a retry timer, the one that just failed). */
    attempt: number;
    /** When the first attempt was scheduled: the retry timeout counts from here. */
    firstAttemptAt: string;
}

/** Work an instance's orchestrator waits for, keyed by its sequence id. */
export type PendingTask =
    | { kind: 'activity'; name: string; input: string | undefined; retry?: RetryProgress }
    | { kind: 'timer'; fireAt: string; fired: boolean; retry?: RetryProgress & { call: RetriedCall } }
    | {
          kind: 'subOrchestration';
          name: string;
          instanceId: string;
          input: string | undefined;
          retry?: RetryProgress;
          idWasGiven: boolean;
      };

/** What a retry timer re-runs when it fires. */
export type RetriedCall =
    | { kind: 'activity'; name: string; input: string | undefined }
    | { kind: 'subOrchestration'; name: string; instanceId: string; input: string | undefined; idWasGiven: boolean };

/** Everything the runtime keeps about one orchestration instance. Plain JSON, so a store can persist it. */
export interface InstanceState {
    instanceId: string;
    name: string;
    /** Changes on every start and every continueAsNew; completions of an older execution are dropped. */
    executionId: string;
    runtimeStatus: RuntimeStatus;
    /** JSON text of the current execution's input. */
    input: string | undefined;
    output: string | undefined;
    customStatus: string | undefined;
    failure?: { message: string };
    createdTime: string;
    lastUpdatedTime: string;
    /** The current execution's history. */
    history: HistoryEventRecord[];
    inbox: InstanceMessage[];
    /** The next sequence id to hand out to an activity, timer or sub-orchestration. */
    nextEventId: number;
    /** The sequence id given to each engine action so far (null for actions that take none). */
    actionIds: (number | null)[];
    pending: Record<string, PendingTask>;
    parent?: { instanceId: string; executionId: string; taskScheduledId: number };
    /** Set when the orchestrator waits for a task the runtime never scheduled: it would wait forever. */
    stuck?: string;
    /** How many executions (continueAsNew cycles) this instance has run. */
    executionCount: number;
    /**
     * The messages the last episode sent to other instances (a finished child's completion for its parent),
     * saved with the state that sent them, so a runtime resuming saved state can deliver the ones that never
     * arrived.
     */
    outbox?: { instanceId: string; message: InstanceMessage }[];
}

/**
 * Where instance state lives. The runtime reads and writes whole instances, one at a time per instance, so a
 * table- or blob-backed store only needs these four operations (with an ETag check on `put` if several
 * processes share it).
 */
export interface InstanceStore {
    get(instanceId: string): Promise<InstanceState | undefined>;
    put(state: InstanceState): Promise<void>;
    delete(instanceId: string): Promise<boolean>;
    list(): Promise<InstanceState[]>;
}

/** Instance state in this process's memory: lost when the process ends. Copies on the way in and out. */
export class MemoryInstanceStore implements InstanceStore {
    private readonly instances = new Map<string, InstanceState>();

    async get(instanceId: string): Promise<InstanceState | undefined> {
        const state = this.instances.get(instanceId);
        return state ? structuredClone(state) : undefined;
    }

    async put(state: InstanceState): Promise<void> {
        this.instances.set(state.instanceId, structuredClone(state));
    }

    async delete(instanceId: string): Promise<boolean> {
        return this.instances.delete(instanceId);
    }

    async list(): Promise<InstanceState[]> {
        return [...this.instances.values()].map((s) => structuredClone(s));
    }
}

const MAX_INSTANCE_ID_CHARS = 256;

/**
 * Checks an instance id as the Azure Storage backend would accept it: 1–256 characters, none of / \ # ? or
 * control characters (they break table keys and the HTTP API's routes).
 */
export function validateInstanceId(instanceId: string): void {
    if (instanceId.length === 0 || instanceId.length > MAX_INSTANCE_ID_CHARS) {
        throw new LocalPlatformError(
            'VALIDATION_FAILED',
            `Instance id must have 1 to ${MAX_INSTANCE_ID_CHARS} characters, got ${instanceId.length}`,
        );
    }
    // eslint-disable-next-line no-control-regex
    const bad = /[/\\#?\u0000-\u001f\u007f]/.exec(instanceId);
    if (bad) {
        throw new LocalPlatformError(
            'VALIDATION_FAILED',
            `Instance id "${instanceId}" contains ${JSON.stringify(bad[0])} at offset ${bad.index}; / \\ # ? and control characters are not allowed`,
        );
    }
}

/** The status of an instance, as `getStatus` of the durable client reports it (values already parsed). */
export interface InstanceStatus {
    instanceId: string;
    name: string;
    runtimeStatus: RuntimeStatus;
    input: unknown;
    output: unknown;
    customStatus: unknown;
    createdTime: Date;
    lastUpdatedTime: Date;
    /** Events in the current execution's history (continueAsNew starts a new one). */
    historyLength: number;
    failure?: { message: string };
}

function parseJson(text: string | undefined): unknown {
    return text === undefined ? null : JSON.parse(text);
}

/** A new instance, Pending, with its ExecutionStarted queued. */
export function newInstance(at: Date, instanceId: string, name: string, input: string | undefined): InstanceState {
    const now = at.toISOString();
    return {
        instanceId,
        name,
        executionId: randomUUID().replace(/-/g, ''),
        runtimeStatus: 'Pending',
        input,
        output: undefined,
        customStatus: undefined,
        createdTime: now,
        lastUpdatedTime: now,
        history: [],
        inbox: [{ kind: 'ExecutionStarted' }],
        nextEventId: 0,
        actionIds: [],
        pending: {},
        executionCount: 1,
    };
}

/** What the durable client's getStatus reports of an instance. */
export function toStatus(s: InstanceState): InstanceStatus {
    return {
        instanceId: s.instanceId,
        name: s.name,
        runtimeStatus: s.runtimeStatus,
        input: parseJson(s.input),
        output: parseJson(s.output),
        customStatus: parseJson(s.customStatus),
        createdTime: new Date(s.createdTime),
        lastUpdatedTime: new Date(s.lastUpdatedTime),
        historyLength: s.history.length,
        ...(s.failure ? { failure: { ...s.failure } } : {}),
    };
}
