import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { HvrError } from '../../shared/errors';
import { invokeFunction } from '../host/invoke';
import type { FunctionRegistry, RegisteredFunction } from '../host/registry';
import { isVirtualClock, realClock, type Clock, type VirtualClock } from './clock';
import { historyEvent, type HistoryEventRecord } from './history';
import { DurableHttpApi } from './httpApi';
import { ActionType, runOrchestratorEpisode, type OrchestratorAction, type RetryOptionsLike } from './replayEngine';
import {
    MemoryInstanceStore,
    TERMINAL_STATUSES,
    type InstanceMessage,
    type InstanceState,
    type InstanceStore,
    type PendingTask,
    type RetriedCall,
    type RetryProgress,
    type RuntimeStatus,
} from './store';

export type { RuntimeStatus } from './store';

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

export interface DurableRuntimeOptions {
    /** The app's registrations: orchestrators and activities are looked up here by name. */
    registry: FunctionRegistry;
    /** A VirtualClock makes time move only through advance/advanceUntil; default the wall clock. */
    clock?: Clock | VirtualClock;
    taskHub?: string;
    /** An activity running longer than this fails with the host's timeout message; default 30 min (host.json). */
    activityTimeoutMs?: number;
    log?: (line: string) => void;
    /** Where instances live; default in memory. */
    store?: InstanceStore;
    /** Activities running at once; default 8, as host.json's maxConcurrentActivityFunctions. */
    maxConcurrentActivities?: number;
    /**
     * Whether startNew may replace an instance that is still Pending/Running: the extension's
     * `overridableExistingInstanceStates`, whose default is NonRunningStates.
     */
    overridableExistingInstanceStates?: 'NonRunningStates' | 'AnyState';
}

/** A completion or timer the orchestrator is waiting for, with the task id it must carry. */
interface ActivityWork {
    instanceId: string;
    executionId: string;
    taskScheduledId: number;
    name: string;
    input: string | undefined;
}

interface ChildStart {
    parent: { instanceId: string; executionId: string; taskScheduledId: number };
    name: string;
    instanceId: string;
    input: string | undefined;
}

/** What an episode asks the runtime to do once the instance is saved. */
type Effect =
    | { kind: 'activity'; work: ActivityWork }
    | { kind: 'startChild'; child: ChildStart }
    | { kind: 'timer'; instanceId: string; executionId: string; timerId: number; fireAtMs: number }
    | { kind: 'message'; instanceId: string; message: InstanceMessage };

interface TimerEntry {
    instanceId: string;
    executionId: string;
    timerId: number;
    fireAtMs: number;
}

const DEFAULT_ACTIVITY_TIMEOUT_MS = 30 * 60 * 1000;
const DEFAULT_ADVANCE_UNTIL_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_WAIT_MS = 30_000;
/** The extension rejects a custom status over 16 KB. */
const MAX_CUSTOM_STATUS_CHARS = 16 * 1024;
const MAX_INSTANCE_ID_CHARS = 256;
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

function parseJson(text: string | undefined): unknown {
    return text === undefined ? null : JSON.parse(text);
}

function describeError(err: unknown): { message: string; details: string } {
    if (err instanceof Error) return { message: err.message, details: err.stack ?? err.message };
    const message = typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err));
    return { message, details: message };
}

/** `hh:mm:ss` as the Functions host prints durations. */
function formatDuration(ms: number): string {
    const total = Math.floor(ms / 1000);
    const pad = (n: number) => n.toString().padStart(2, '0');
    return `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
}

/**
 * Checks an instance id as the Azure Storage backend would accept it: 1–256 characters, none of / \ # ? or
 * control characters (they break table keys and the HTTP API's routes).
 */
export function validateInstanceId(instanceId: string): void {
    if (instanceId.length === 0 || instanceId.length > MAX_INSTANCE_ID_CHARS) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Instance id must have 1 to ${MAX_INSTANCE_ID_CHARS} characters, got ${instanceId.length}`,
        );
    }
    // eslint-disable-next-line no-control-regex
    const bad = /[/\\#?\u0000-\u001f\u007f]/.exec(instanceId);
    if (bad) {
        throw new HvrError(
            'VALIDATION_FAILED',
            `Instance id "${instanceId}" contains ${JSON.stringify(bad[0])} at offset ${bad.index}; / \\ # ? and control characters are not allowed`,
        );
    }
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

/**
 * Runs the app's registered orchestrations and activities without the Functions host: the orchestrators are
 * replayed by the `durable-functions` package's own engine over histories built here the way the Durable
 * Task Framework builds them, activities are called for real, timers run against a clock (virtual in tests),
 * and the durable client's HTTP API is served on loopback so `df.getClient(context)` works unchanged.
 */
export class DurableRuntime {
    readonly taskHub: string;
    private readonly registry: FunctionRegistry;
    private readonly clock: Clock;
    private readonly store: InstanceStore;
    private readonly log: (line: string) => void;
    private readonly activityTimeoutMs: number;
    private readonly maxConcurrentActivities: number;
    private readonly replaceRunning: boolean;

    private readonly ready: string[] = [];
    private readonly activityQueue: ActivityWork[] = [];
    private readonly running = new Set<Promise<void>>();
    private readonly timers = new Map<string, TimerEntry>();
    private readonly locks = new Map<string, Promise<void>>();
    private readonly changes = new EventEmitter();
    private readonly problems: string[] = [];
    private driving: Promise<void> | undefined;
    private wallTimer: NodeJS.Timeout | undefined;
    private httpApi: DurableHttpApi | undefined;
    private closed = false;

    constructor(options: DurableRuntimeOptions) {
        this.registry = options.registry;
        this.clock = options.clock ?? realClock;
        this.taskHub = options.taskHub ?? 'TestHubName';
        this.store = options.store ?? new MemoryInstanceStore();
        this.log = options.log ?? (() => undefined);
        this.activityTimeoutMs = options.activityTimeoutMs ?? DEFAULT_ACTIVITY_TIMEOUT_MS;
        this.maxConcurrentActivities = Math.max(1, options.maxConcurrentActivities ?? 8);
        this.replaceRunning = options.overridableExistingInstanceStates === 'AnyState';
        this.changes.setMaxListeners(0);
    }

    /** True when time only moves through advance/advanceUntil, and work only through runUntilIdle. */
    get isVirtual(): boolean {
        return isVirtualClock(this.clock);
    }

    // ---------------------------------------------------------------- client operations

    /**
     * Starts an orchestration. An existing instance with the same id is replaced only if it is Completed,
     * Failed or Terminated (the extension's default); otherwise CONFLICT, as the real client throws.
     */
    async startNew(orchestrationName: string, options: { instanceId?: string; input?: unknown } = {}): Promise<string> {
        this.assertOpen();
        const fn = this.registry.functions.get(orchestrationName);
        if (!fn || fn.trigger.type !== 'orchestrationTrigger') {
            throw new HvrError(
                'NOT_FOUND',
                `The function '${orchestrationName}' doesn't exist, is disabled, or is not an orchestrator function`,
            );
        }
        const instanceId = options.instanceId ?? randomUUID().replace(/-/g, '');
        validateInstanceId(instanceId);
        const inputText = options.input === undefined ? undefined : JSON.stringify(options.input);
        await this.withInstance(instanceId, async () => {
            const existing = await this.store.get(instanceId);
            if (existing && !TERMINAL_STATUSES.has(existing.runtimeStatus) && !this.replaceRunning) {
                throw new HvrError(
                    'CONFLICT',
                    `An orchestration instance with the status ${existing.runtimeStatus} already exists: ${instanceId}`,
                    { instanceId, runtimeStatus: existing.runtimeStatus },
                );
            }
            await this.store.put(this.newInstance(instanceId, orchestrationName, inputText));
        });
        this.enqueueReady(instanceId);
        this.log(`started ${orchestrationName} as ${instanceId}`);
        return instanceId;
    }

    /**
     * Sends an event to an instance. A missing instance is NOT_FOUND; an instance that already finished drops
     * the event, as the real backend does. Events that arrive before the orchestrator waits are buffered.
     */
    async raiseEvent(instanceId: string, eventName: string, data?: unknown): Promise<void> {
        this.assertOpen();
        if (!eventName) throw new HvrError('VALIDATION_FAILED', 'eventName must be a non-empty string');
        const input = data === undefined ? undefined : JSON.stringify(data);
        const delivered = await this.deliver(instanceId, { kind: 'EventRaised', name: eventName, input }, false, true);
        if (delivered === 'missing') {
            throw new HvrError('NOT_FOUND', `No orchestration instance '${instanceId}' to raise '${eventName}' to`, {
                instanceId,
            });
        }
        if (delivered === 'finished') this.log(`event ${eventName} to finished instance ${instanceId} dropped`);
    }

    async getStatus(instanceId: string): Promise<InstanceStatus | undefined> {
        const state = await this.store.get(instanceId);
        return state ? this.toStatus(state) : undefined;
    }

    /** The current execution's history, as the extension would hand it to the orchestrator. */
    async getHistory(instanceId: string): Promise<HistoryEventRecord[]> {
        const state = await this.store.get(instanceId);
        if (!state) throw new HvrError('NOT_FOUND', `No orchestration instance '${instanceId}'`, { instanceId });
        return state.history;
    }

    async listInstances(filter: { runtimeStatus?: RuntimeStatus[]; prefix?: string } = {}): Promise<InstanceStatus[]> {
        const all = await this.store.list();
        return all
            .filter((s) => !filter.runtimeStatus || filter.runtimeStatus.includes(s.runtimeStatus))
            .filter((s) => !filter.prefix || s.instanceId.startsWith(filter.prefix))
            .sort((a, b) => a.createdTime.localeCompare(b.createdTime) || a.instanceId.localeCompare(b.instanceId))
            .map((s) => this.toStatus(s));
    }

    /** Terminates a Pending/Running instance; a finished one is left as it is. Missing → NOT_FOUND. */
    async terminate(instanceId: string, reason: string): Promise<void> {
        this.assertOpen();
        const delivered = await this.deliver(instanceId, { kind: 'Terminate', reason }, true, false);
        if (delivered === 'missing') {
            throw new HvrError('NOT_FOUND', `No orchestration instance '${instanceId}' to terminate`, { instanceId });
        }
    }

    /**
     * Deletes an instance and its history. Only finished instances can be purged (terminate first): purging a
     * running one would leave its timers and activities writing to nothing.
     */
    async purge(instanceId: string): Promise<void> {
        await this.withInstance(instanceId, async () => {
            const state = await this.store.get(instanceId);
            if (!state) throw new HvrError('NOT_FOUND', `No orchestration instance '${instanceId}' to purge`);
            if (!TERMINAL_STATUSES.has(state.runtimeStatus)) {
                throw new HvrError(
                    'CONFLICT',
                    `Instance '${instanceId}' is ${state.runtimeStatus}; terminate it before purging`,
                    { instanceId, runtimeStatus: state.runtimeStatus },
                );
            }
            await this.store.delete(instanceId);
        });
        this.changes.emit('change', instanceId);
    }

    // ---------------------------------------------------------------- driving

    /**
     * Runs everything runnable — orchestrator episodes and activities — until nothing can progress without
     * the clock moving. Throws if an orchestration waits for a task the runtime never scheduled (it would
     * hang forever on the real host too).
     */
    async runUntilIdle(): Promise<void> {
        do {
            await this.drive();
        } while (!this.closed && (this.ready.length > 0 || this.running.size > 0 || this.activityQueue.length > 0));
        this.throwProblems();
    }

    /** Virtual clock only: moves time forward by `ms`, firing due timers in order and running until idle after each. */
    async advance(ms: number): Promise<void> {
        const clock = this.virtualClock('advance');
        if (!Number.isFinite(ms) || ms < 0)
            throw new HvrError('VALIDATION_FAILED', `advance(ms) needs ms >= 0, got ${ms}`);
        const target = clock.now().getTime() + ms;
        await this.runUntilIdle();
        for (;;) {
            const next = await this.nextTimer();
            if (!next || next.fireAtMs > target) break;
            clock.advanceTo(new Date(next.fireAtMs));
            await this.fireDueTimers();
            await this.runUntilIdle();
        }
        clock.advanceTo(new Date(target));
        await this.fireDueTimers();
        await this.runUntilIdle();
    }

    /**
     * Virtual clock only: jumps to the next due timer repeatedly until `predicate` holds. Throws when nothing
     * is left to run (no timers) or when `maxMs` of virtual time (default 7 days) passes first.
     */
    async advanceUntil(predicate: () => boolean | Promise<boolean>, options: { maxMs?: number } = {}): Promise<void> {
        const clock = this.virtualClock('advanceUntil');
        const limit = clock.now().getTime() + (options.maxMs ?? DEFAULT_ADVANCE_UNTIL_MS);
        await this.runUntilIdle();
        while (!(await predicate())) {
            const next = await this.nextTimer();
            if (!next) {
                throw new HvrError(
                    'TIMEOUT',
                    `advanceUntil: the condition does not hold and nothing is left to run (no timers pending). ${await this.describeWaiting()}`,
                );
            }
            if (next.fireAtMs > limit) {
                throw new HvrError(
                    'TIMEOUT',
                    `advanceUntil: the condition did not hold within ${options.maxMs ?? DEFAULT_ADVANCE_UNTIL_MS} ms of virtual time; next timer at ${new Date(next.fireAtMs).toISOString()}. ${await this.describeWaiting()}`,
                );
            }
            clock.advanceTo(new Date(next.fireAtMs));
            await this.fireDueTimers();
            await this.runUntilIdle();
        }
    }

    /**
     * Waits until an instance's status satisfies `predicate`. With the real clock it waits up to `timeoutMs`
     * (default 30 s) of wall time; with a virtual clock it advances virtual time up to `timeoutMs` instead.
     */
    async waitForStatus(
        instanceId: string,
        predicate: (s: InstanceStatus) => boolean,
        options: { timeoutMs?: number } = {},
    ): Promise<InstanceStatus> {
        const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
        const matches = async () => {
            const status = await this.getStatus(instanceId);
            return status && predicate(status) ? status : undefined;
        };
        if (this.isVirtual) {
            await this.advanceUntil(async () => (await matches()) !== undefined, { maxMs: timeoutMs });
            return (await matches())!;
        }
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const status = await matches();
            if (status) return status;
            this.throwProblems();
            const left = deadline - Date.now();
            if (left <= 0) {
                const last = await this.getStatus(instanceId);
                throw new HvrError(
                    'TIMEOUT',
                    `Instance '${instanceId}' did not reach the expected status within ${timeoutMs} ms (it is ${last?.runtimeStatus ?? 'missing'})`,
                    { instanceId, runtimeStatus: last?.runtimeStatus },
                );
            }
            await new Promise<void>((resolve) => {
                const done = () => {
                    clearTimeout(timer);
                    this.changes.off('change', done);
                    resolve();
                };
                const timer = setTimeout(done, Math.min(left, 1000));
                this.changes.on('change', done);
            });
        }
    }

    /**
     * The value of a `durableClient` input binding: `df.getClient(context)` builds the real DurableClient from
     * it, and that client calls the HTTP API this runtime serves on a loopback port.
     */
    async clientBinding(): Promise<unknown> {
        this.assertOpen();
        if (!this.httpApi) this.httpApi = new DurableHttpApi(this, this.taskHub, this.log);
        return this.httpApi.clientBinding();
    }

    /** The loopback origin serving the durable HTTP API (after `clientBinding()`); the local host proxies to it. */
    get httpOrigin(): string | undefined {
        return this.httpApi?.origin;
    }

    /** Stops timers and the HTTP API; activities still running finish but their results are dropped. */
    async close(): Promise<void> {
        this.closed = true;
        if (this.wallTimer) clearTimeout(this.wallTimer);
        this.wallTimer = undefined;
        await this.httpApi?.close();
        const inFlight = [...this.running];
        if (inFlight.length > 0) {
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([
                Promise.allSettled(inFlight),
                new Promise<void>((resolve) => {
                    timer = setTimeout(resolve, 5000);
                    timer.unref();
                }),
            ]);
            if (timer) clearTimeout(timer);
        }
    }

    // ---------------------------------------------------------------- scheduling internals

    private assertOpen(): void {
        if (this.closed) throw new HvrError('VALIDATION_FAILED', 'This DurableRuntime is closed');
    }

    private virtualClock(operation: string): VirtualClock {
        if (!isVirtualClock(this.clock)) {
            throw new HvrError(
                'VALIDATION_FAILED',
                `${operation} needs a VirtualClock; this runtime uses the real clock`,
            );
        }
        return this.clock;
    }

    private newInstance(instanceId: string, name: string, input: string | undefined): InstanceState {
        const now = this.clock.now().toISOString();
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

    private toStatus(s: InstanceState): InstanceStatus {
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

    /** Serializes everything done to one instance, so a result arriving mid-episode is not lost. */
    private async withInstance<T>(instanceId: string, work: () => Promise<T>): Promise<T> {
        const previous = this.locks.get(instanceId) ?? Promise.resolve();
        let release!: () => void;
        const current = new Promise<void>((resolve) => (release = resolve));
        const tail = previous.then(() => current);
        this.locks.set(instanceId, tail);
        await previous;
        try {
            return await work();
        } finally {
            release();
            if (this.locks.get(instanceId) === tail) this.locks.delete(instanceId);
        }
    }

    private enqueueReady(instanceId: string): void {
        this.ready.push(instanceId);
        this.changes.emit('change', instanceId);
        this.kick();
    }

    /** Adds a message to an instance's inbox; 'finished' when the instance already completed (dropped). */
    private async deliver(
        instanceId: string,
        message: InstanceMessage,
        front: boolean,
        dropIfFinished: boolean,
    ): Promise<'delivered' | 'missing' | 'finished'> {
        const outcome = await this.withInstance(instanceId, async () => {
            const state = await this.store.get(instanceId);
            if (!state) return 'missing' as const;
            if (TERMINAL_STATUSES.has(state.runtimeStatus)) return 'finished' as const;
            if (front) state.inbox.unshift(message);
            else state.inbox.push(message);
            await this.store.put(state);
            return 'delivered' as const;
        });
        if (outcome === 'delivered') this.enqueueReady(instanceId);
        else if (outcome === 'finished' && !dropIfFinished)
            this.log(`${message.kind} to finished ${instanceId} ignored`);
        return outcome;
    }

    /** With the real clock, work runs on its own as soon as it arrives. */
    private kick(): void {
        if (this.isVirtual || this.closed) return;
        setImmediate(() => {
            this.drive().catch((err: unknown) => this.log(`durable runtime error: ${describeError(err).details}`));
        });
    }

    private drive(): Promise<void> {
        if (!this.driving) {
            this.driving = this.drain().finally(() => {
                this.driving = undefined;
                this.armWallTimer();
            });
        }
        return this.driving;
    }

    private async drain(): Promise<void> {
        for (;;) {
            if (this.closed) return;
            while (this.ready.length > 0) {
                const instanceId = this.ready.shift()!;
                const effects = await this.withInstance(instanceId, () => this.runEpisode(instanceId));
                this.changes.emit('change', instanceId);
                await this.applyEffects(effects);
            }
            this.startActivities();
            if (this.ready.length > 0) continue;
            if (this.running.size === 0) return;
            await Promise.race(this.running);
        }
    }

    private async applyEffects(effects: Effect[]): Promise<void> {
        for (const effect of effects) {
            switch (effect.kind) {
                case 'activity':
                    this.activityQueue.push(effect.work);
                    break;
                case 'timer':
                    this.timers.set(`${effect.instanceId}\u0000${effect.executionId}\u0000${effect.timerId}`, effect);
                    break;
                case 'message':
                    await this.deliver(effect.instanceId, effect.message, false, false);
                    break;
                case 'startChild':
                    await this.startChild(effect.child);
                    break;
            }
        }
    }

    private async startChild(child: ChildStart): Promise<void> {
        const fail = (reason: string) =>
            this.deliver(
                child.parent.instanceId,
                {
                    kind: 'SubOrchestrationFailed',
                    executionId: child.parent.executionId,
                    taskScheduledId: child.parent.taskScheduledId,
                    reason,
                    details: '',
                },
                false,
                false,
            );
        const fn = this.registry.functions.get(child.name);
        if (!fn || fn.trigger.type !== 'orchestrationTrigger') {
            await fail(`The function '${child.name}' doesn't exist, is disabled, or is not an orchestrator function`);
            return;
        }
        const started = await this.withInstance(child.instanceId, async () => {
            const existing = await this.store.get(child.instanceId);
            if (existing && !TERMINAL_STATUSES.has(existing.runtimeStatus)) return existing.runtimeStatus;
            const state = this.newInstance(child.instanceId, child.name, child.input);
            state.parent = child.parent;
            await this.store.put(state);
            return undefined;
        });
        if (started !== undefined) {
            await fail(`An orchestration instance with the status ${started} already exists: ${child.instanceId}`);
            return;
        }
        this.enqueueReady(child.instanceId);
    }

    private startActivities(): void {
        while (this.running.size < this.maxConcurrentActivities && this.activityQueue.length > 0) {
            const work = this.activityQueue.shift()!;
            const run: Promise<void> = this.runActivity(work).finally(() => this.running.delete(run));
            this.running.add(run);
        }
    }

    private async runActivity(work: ActivityWork): Promise<void> {
        let message: InstanceMessage;
        const fn = this.registry.functions.get(work.name);
        if (!fn || fn.trigger.type !== 'activityTrigger') {
            message = {
                kind: 'TaskFailed',
                executionId: work.executionId,
                taskScheduledId: work.taskScheduledId,
                reason: `The function '${work.name}' doesn't exist, is disabled, or is not an activity function`,
                details: '',
            };
        } else {
            message = await this.callActivity(fn, work);
        }
        if (this.closed) return;
        try {
            await this.deliver(work.instanceId, message, false, false);
        } catch (err) {
            this.log(
                `could not deliver the result of ${work.name} to ${work.instanceId}: ${describeError(err).message}`,
            );
        }
    }

    private async callActivity(fn: RegisteredFunction, work: ActivityWork): Promise<InstanceMessage> {
        const base = { executionId: work.executionId, taskScheduledId: work.taskScheduledId };
        let timer: NodeJS.Timeout | undefined;
        try {
            const input = work.input === undefined ? undefined : JSON.parse(work.input);
            const invocation = invokeFunction(fn, input, {
                // Activities may declare a durable client (start or stop other instances), as on the real host.
                runtime: this,
                triggerMetadata: { instanceId: work.instanceId },
                log: (level, line) =>
                    this.log(`[${work.name} ${work.instanceId}#${work.taskScheduledId}] ${level}: ${line}`),
            });
            const timeout = new Promise<never>((_, reject) => {
                timer = setTimeout(
                    () =>
                        reject(
                            new Error(
                                `Timeout value of ${formatDuration(this.activityTimeoutMs)} was exceeded by function: Functions.${work.name}`,
                            ),
                        ),
                    this.activityTimeoutMs,
                );
                timer.unref();
            });
            const { result } = await Promise.race([invocation, timeout]);
            const text = JSON.stringify(result ?? null);
            return { kind: 'TaskCompleted', ...base, result: text };
        } catch (err) {
            const { message, details } = describeError(err);
            return {
                kind: 'TaskFailed',
                ...base,
                reason: `Activity function '${work.name}' failed: ${message}`,
                details,
            };
        } finally {
            if (timer) clearTimeout(timer);
        }
    }

    // ---------------------------------------------------------------- timers

    private async validTimer(entry: TimerEntry): Promise<boolean> {
        const state = await this.store.get(entry.instanceId);
        const pending = state?.executionId === entry.executionId ? state.pending[entry.timerId] : undefined;
        return pending?.kind === 'timer' && !pending.fired && !TERMINAL_STATUSES.has(state!.runtimeStatus);
    }

    /** The earliest live timer; cancelled and stale ones are forgotten on the way. */
    private async nextTimer(): Promise<TimerEntry | undefined> {
        const ordered = [...this.timers.entries()].sort(
            ([, a], [, b]) => a.fireAtMs - b.fireAtMs || a.timerId - b.timerId,
        );
        for (const [key, entry] of ordered) {
            if (await this.validTimer(entry)) return entry;
            this.timers.delete(key);
        }
        return undefined;
    }

    private async fireDueTimers(): Promise<void> {
        const nowMs = this.clock.now().getTime();
        const due = [...this.timers.entries()]
            .filter(([, t]) => t.fireAtMs <= nowMs)
            .sort(([, a], [, b]) => a.fireAtMs - b.fireAtMs || a.timerId - b.timerId);
        for (const [key, entry] of due) {
            this.timers.delete(key);
            const fired = await this.withInstance(entry.instanceId, async () => {
                const state = await this.store.get(entry.instanceId);
                if (!state || state.executionId !== entry.executionId || TERMINAL_STATUSES.has(state.runtimeStatus)) {
                    return false;
                }
                const pending = state.pending[entry.timerId];
                if (pending?.kind !== 'timer' || pending.fired) return false;
                pending.fired = true;
                state.inbox.push({
                    kind: 'TimerFired',
                    executionId: entry.executionId,
                    timerId: entry.timerId,
                    fireAt: pending.fireAt,
                });
                await this.store.put(state);
                return true;
            });
            if (fired) this.enqueueReady(entry.instanceId);
        }
    }

    /** With the real clock, sleeps until the earliest timer is due. */
    private armWallTimer(): void {
        if (this.isVirtual || this.closed) return;
        if (this.wallTimer) clearTimeout(this.wallTimer);
        this.wallTimer = undefined;
        let earliest = Infinity;
        for (const t of this.timers.values()) earliest = Math.min(earliest, t.fireAtMs);
        if (earliest === Infinity) return;
        const delay = Math.min(Math.max(0, earliest - this.clock.now().getTime()), MAX_TIMER_DELAY_MS);
        this.wallTimer = setTimeout(() => {
            this.wallTimer = undefined;
            this.fireDueTimers()
                .then(() => this.armWallTimer())
                .catch((err: unknown) => this.log(`durable timer error: ${describeError(err).details}`));
        }, delay);
        this.wallTimer.unref();
    }

    // ---------------------------------------------------------------- episodes

    private throwProblems(): void {
        if (this.problems.length === 0) return;
        const all = this.problems.splice(0);
        throw new HvrError('INTERNAL', all.join('\n'), { problems: all });
    }

    private async describeWaiting(): Promise<string> {
        const active = (await this.store.list()).filter((s) => !TERMINAL_STATUSES.has(s.runtimeStatus));
        if (active.length === 0) return 'No instance is running.';
        return `Running: ${active
            .map((s) => `${s.instanceId} (${s.name}, waiting for ${Object.keys(s.pending).length} task(s) and events)`)
            .join('; ')}`;
    }

    /** Whether a message belongs to the current execution and to a task still pending. */
    private isCurrent(state: InstanceState, message: InstanceMessage): boolean {
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

    /** Takes one message from the instance's inbox, runs one orchestrator episode over it, saves the result. */
    private async runEpisode(instanceId: string): Promise<Effect[]> {
        const state = await this.store.get(instanceId);
        if (!state || state.inbox.length === 0) return [];
        const message = state.inbox.shift()!;
        const effects: Effect[] = [];
        const now = this.clock.now();
        const finished = TERMINAL_STATUSES.has(state.runtimeStatus);
        if (finished || !this.isCurrent(state, message)) {
            this.log(`${message.kind} for ${instanceId} dropped (${finished ? state.runtimeStatus : 'stale'})`);
            await this.store.put(state);
            return effects;
        }
        if (message.kind === 'Terminate') {
            state.history.push(
                historyEvent.executionTerminated(now, message.reason),
                historyEvent.executionCompleted(now, 'Terminated', JSON.stringify(message.reason)),
            );
            this.finish(state, 'Terminated', JSON.stringify(message.reason), now, effects, {
                failed: `Orchestration '${state.name}' (${state.instanceId}) was terminated: ${message.reason}`,
            });
            await this.store.put(state);
            return effects;
        }

        const newEvents: HistoryEventRecord[] = [historyEvent.orchestratorStarted(now)];
        const decisions: HistoryEventRecord[] = [];
        this.applyMessage(state, message, now, newEvents, decisions, effects);

        const fn = this.registry.functions.get(state.name);
        const outcome =
            fn && fn.trigger.type === 'orchestrationTrigger'
                ? await runOrchestratorEpisode(
                      fn.handler,
                      {
                          history: structuredClone([...state.history, ...newEvents]),
                          input: parseJson(state.input),
                          instanceId: state.instanceId,
                          isReplaying: state.history.length > 0,
                          parentInstanceId: state.parent?.instanceId,
                          upperSchemaVersion: 0,
                          longRunningTimerIntervalDuration: '3.00:00:00',
                          maximumShortTimerDuration: '6.00:00:00',
                          defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
                      },
                      state.name,
                      this.log,
                  )
                : {
                      isDone: false,
                      actions: [],
                      output: undefined,
                      customStatus: undefined,
                      error: `The function '${state.name}' doesn't exist, is disabled, or is not an orchestrator function`,
                      awaitedTaskIds: [],
                      awaitedEvents: [],
                  };
        for (const e of newEvents) e.IsPlayed = true;
        state.history.push(...newEvents, ...decisions);
        state.lastUpdatedTime = now.toISOString();

        let error = outcome.error;
        let continueAsNew: OrchestratorAction | undefined;
        if (error === undefined) {
            const customStatus = outcome.customStatus === undefined ? undefined : JSON.stringify(outcome.customStatus);
            if (customStatus !== undefined && customStatus.length > MAX_CUSTOM_STATUS_CHARS) {
                error = `The custom status is ${customStatus.length} characters of JSON; the limit is 16 KB`;
            } else {
                state.customStatus = customStatus;
                const result = this.applyActions(state, outcome.actions, now, effects);
                error = result.error;
                continueAsNew = result.continueAsNew;
            }
        }

        if (error !== undefined) {
            const message = `Orchestrator function '${state.name}' failed: ${error}`;
            state.failure = { message: error };
            state.history.push(historyEvent.executionCompleted(now, 'Failed', JSON.stringify(message)));
            this.finish(state, 'Failed', JSON.stringify(message), now, effects, { failed: message });
        } else if (outcome.isDone && continueAsNew) {
            this.continueAsNew(state, continueAsNew, now);
        } else if (outcome.isDone) {
            let output: string | undefined;
            try {
                output = outcome.output === undefined ? undefined : JSON.stringify(outcome.output);
            } catch (err) {
                const msg = `Orchestrator function '${state.name}' failed: its output is not JSON: ${describeError(err).message}`;
                state.failure = { message: msg };
                state.history.push(historyEvent.executionCompleted(now, 'Failed', JSON.stringify(msg)));
                this.finish(state, 'Failed', JSON.stringify(msg), now, effects, { failed: msg });
                await this.store.put(state);
                return effects;
            }
            state.history.push(historyEvent.executionCompleted(now, 'Completed', output));
            this.finish(state, 'Completed', output, now, effects, { completed: output ?? 'null' });
        } else {
            state.history.push(historyEvent.orchestratorCompleted(now));
            this.checkForHang(state, outcome.awaitedTaskIds);
        }
        if (state.runtimeStatus === 'Completed' || state.runtimeStatus === 'Failed') {
            state.history.push(historyEvent.orchestratorCompleted(now));
        }
        await this.store.put(state);
        return effects;
    }

    /** Turns one inbox message into the new history events (and, for retries, the runtime's own decisions). */
    private applyMessage(
        state: InstanceState,
        message: InstanceMessage,
        now: Date,
        newEvents: HistoryEventRecord[],
        decisions: HistoryEventRecord[],
        effects: Effect[],
    ): void {
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
                if (failed && failed.kind !== 'timer' && failed.retry) {
                    this.scheduleRetryTimer(state, failed, failed.retry, now, decisions, effects);
                }
                break;
            }
            case 'TimerFired': {
                const timer = state.pending[message.timerId];
                delete state.pending[message.timerId];
                newEvents.push(historyEvent.timerFired(now, message.timerId, new Date(message.fireAt)));
                const retry = timer?.kind === 'timer' ? timer.retry : undefined;
                if (retry && retry.attempt < retry.options.maxNumberOfAttempts) {
                    this.scheduleCall(state, retry.call, now, decisions, effects, {
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
     * After a failed attempt of a `*WithRetry` call, the Durable Task Framework waits on a durable timer —
     * also after the last attempt, before the failure reaches the orchestrator. The timer takes the next id.
     */
    private scheduleRetryTimer(
        state: InstanceState,
        failed: Exclude<PendingTask, { kind: 'timer' }>,
        retry: RetryProgress,
        now: Date,
        decisions: HistoryEventRecord[],
        effects: Effect[],
    ): void {
        const delay = retryDelayMs(retry.options, retry.attempt, new Date(retry.firstAttemptAt), now);
        if (delay === undefined) {
            // The framework gives up without a timer; the JavaScript engine then waits forever (reported as a hang).
            this.log(`${state.instanceId}: retry timeout of ${failed.name} expired; no retry timer`);
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
        this.createTimer(state, new Date(now.getTime() + delay), now, decisions, effects, { ...retry, call });
    }

    private createTimer(
        state: InstanceState,
        fireAt: Date,
        now: Date,
        decisions: HistoryEventRecord[],
        effects: Effect[],
        retry?: RetryProgress & { call: RetriedCall },
        cancelled = false,
    ): number {
        const id = state.nextEventId++;
        decisions.push(historyEvent.timerCreated(now, id, fireAt));
        if (!cancelled) {
            state.pending[id] = {
                kind: 'timer',
                fireAt: fireAt.toISOString(),
                fired: false,
                ...(retry ? { retry } : {}),
            };
            effects.push({
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
    private scheduleCall(
        state: InstanceState,
        call: RetriedCall,
        now: Date,
        decisions: HistoryEventRecord[],
        effects: Effect[],
        retry?: RetryProgress,
    ): number {
        const id = state.nextEventId++;
        if (call.kind === 'activity') {
            decisions.push(historyEvent.taskScheduled(now, id, call.name, call.input));
            state.pending[id] = { kind: 'activity', name: call.name, input: call.input, ...(retry ? { retry } : {}) };
            effects.push({
                kind: 'activity',
                work: {
                    instanceId: state.instanceId,
                    executionId: state.executionId,
                    taskScheduledId: id,
                    name: call.name,
                    input: call.input,
                },
            });
        } else {
            // Without an id, each attempt is a new child; the host derives it from the parent and the task id.
            const childId = call.idWasGiven ? call.instanceId : `${state.instanceId}:${id}`;
            decisions.push(historyEvent.subOrchestrationCreated(now, id, call.name, childId, call.input));
            state.pending[id] = {
                kind: 'subOrchestration',
                name: call.name,
                instanceId: childId,
                input: call.input,
                idWasGiven: call.idWasGiven,
                ...(retry ? { retry } : {}),
            };
            effects.push({
                kind: 'startChild',
                child: {
                    parent: { instanceId: state.instanceId, executionId: state.executionId, taskScheduledId: id },
                    name: call.name,
                    instanceId: childId,
                    input: call.input,
                },
            });
        }
        return id;
    }

    /**
     * Gives each new engine action its sequence id and history event, in the order the engine numbered them;
     * cancels timers the orchestrator cancelled since the last episode.
     */
    private applyActions(
        state: InstanceState,
        actions: OrchestratorAction[],
        now: Date,
        effects: Effect[],
    ): { error?: string; continueAsNew?: OrchestratorAction } {
        const decisions: HistoryEventRecord[] = [];
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
                    const call: RetriedCall = { kind: 'activity', name: action.functionName!, input };
                    state.actionIds.push(this.scheduleCall(state, call, now, decisions, effects, retry));
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
                    state.actionIds.push(this.scheduleCall(state, call, now, decisions, effects, retry));
                    break;
                }
                case ActionType.CreateTimer: {
                    const fireAt = new Date(action.fireAt as Date | string);
                    state.actionIds.push(
                        this.createTimer(state, fireAt, now, decisions, effects, undefined, action.isCanceled === true),
                    );
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
        state.history.push(...decisions);
        return { error, continueAsNew };
    }

    /** Ends the execution: clears its pending work and tells the parent orchestration, if any. */
    private finish(
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

    /**
     * Starts a new execution with the new input and an empty history. Events raised and not yet delivered stay
     * in the inbox for the new execution; events already in the old history are dropped, as with the host.
     */
    private continueAsNew(state: InstanceState, action: OrchestratorAction, now: Date): void {
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
        this.ready.push(state.instanceId);
    }

    /** The engine waits for ids the runtime never scheduled: on the real host it would wait forever. */
    private checkForHang(state: InstanceState, awaited: number[]): void {
        const missing = awaited.filter((id) => !(id in state.pending));
        if (missing.length === 0) {
            delete state.stuck;
            return;
        }
        const text =
            `Orchestration '${state.name}' (${state.instanceId}) waits for task id(s) ${missing.join(', ')} that were never ` +
            `scheduled (pending: ${Object.keys(state.pending).join(', ') || 'none'}); it would hang forever`;
        state.stuck = text;
        this.problems.push(text);
        this.log(text);
    }
}
