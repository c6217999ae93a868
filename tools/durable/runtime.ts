import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { HvrError } from '../../shared/errors';
import type { FunctionRegistry } from '../host/registry';
import { describeError, runActivityWork } from './activities';
import { isVirtualClock, realClock, type Clock, type VirtualClock } from './clock';
import type { HistoryEventRecord } from './history';
import {
    beginEpisode,
    endEpisode,
    isFinished,
    takeBatch,
    terminate,
    type ActivityWork,
    type ChildStart,
    type DeliveryMode,
    type Effect,
} from './historyRules';
import { DurableHttpApi } from './httpApi';
import { fireTimer, isLiveTimer, TimerIndex } from './timers';
import { runOrchestratorEpisode } from './replayEngine';
import {
    MemoryInstanceStore,
    newInstance,
    TERMINAL_STATUSES,
    toStatus,
    validateInstanceId,
    type InstanceStatus,
    type InstanceMessage,
    type InstanceStore,
    type RuntimeStatus,
} from './store';

export { validateInstanceId, type InstanceStatus, type RuntimeStatus } from './store';
export { retryDelayMs, type DeliveryMode } from './historyRules';

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
    /**
     * How queued messages reach an orchestrator: `batch` (default) as the Azure Storage backend delivers them,
     * several per episode, the unread ones of the batch lost on continueAsNew; `single`, one per episode.
     */
    delivery?: DeliveryMode;
}

const DEFAULT_ACTIVITY_TIMEOUT_MS = 30 * 60 * 1000;
const DEFAULT_ADVANCE_UNTIL_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_WAIT_MS = 30_000;
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

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
    private readonly delivery: DeliveryMode;

    private readonly ready: string[] = [];
    private readonly activityQueue: ActivityWork[] = [];
    private readonly running = new Set<Promise<void>>();
    private readonly timers = new TimerIndex();
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
        this.delivery = options.delivery ?? 'batch';
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
            await this.store.put(newInstance(this.clock.now(), instanceId, orchestrationName, inputText));
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
        return state ? toStatus(state) : undefined;
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
            .map((s) => toStatus(s));
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
                    this.timers.add(effect);
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
            const state = newInstance(this.clock.now(), child.instanceId, child.name, child.input);
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
        const message = await runActivityWork(this.registry.functions.get(work.name), work, {
            runtime: this,
            timeoutMs: this.activityTimeoutMs,
            log: this.log,
        });
        if (this.closed) return;
        try {
            await this.deliver(work.instanceId, message, false, false);
        } catch (err) {
            this.log(
                `could not deliver the result of ${work.name} to ${work.instanceId}: ${describeError(err).message}`,
            );
        }
    }

    // ---------------------------------------------------------------- timers

    private async fireDueTimers(): Promise<void> {
        for (const entry of this.timers.takeDue(this.clock.now().getTime())) {
            const fired = await this.withInstance(entry.instanceId, async () => {
                const state = await this.store.get(entry.instanceId);
                if (!fireTimer(state, entry)) return false;
                await this.store.put(state!);
                return true;
            });
            if (fired) this.enqueueReady(entry.instanceId);
        }
    }

    private nextTimer() {
        return this.timers.next(async (entry) => isLiveTimer(await this.store.get(entry.instanceId), entry));
    }

    /** With the real clock, sleeps until the earliest timer is due. */
    private armWallTimer(): void {
        if (this.isVirtual || this.closed) return;
        if (this.wallTimer) clearTimeout(this.wallTimer);
        this.wallTimer = undefined;
        const earliest = this.timers.earliestMs();
        if (earliest === undefined) return;
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

    /**
     * Takes the next batch of the instance's inbox (one message with `delivery: 'single'`), runs one orchestrator
     * episode over it and saves the result; a new execution (continueAsNew) is queued to run at once.
     */
    private async runEpisode(instanceId: string): Promise<Effect[]> {
        const state = await this.store.get(instanceId);
        if (!state || state.inbox.length === 0) return [];
        const now = this.clock.now();
        if (isFinished(state)) {
            this.log(`${state.inbox.length} message(s) for ${instanceId} dropped (${state.runtimeStatus})`);
            state.inbox = [];
            await this.store.put(state);
            return [];
        }
        const batch = takeBatch(state, this.delivery, this.log);
        const first = batch[0];
        if (!first) {
            await this.store.put(state);
            return [];
        }
        if (first.kind === 'Terminate') {
            const effects = terminate(state, first.reason, now);
            await this.store.put(state);
            return effects;
        }
        const episode = beginEpisode(state, batch, now, this.log);
        const fn = this.registry.functions.get(state.name);
        const outcome =
            fn && fn.trigger.type === 'orchestrationTrigger'
                ? await runOrchestratorEpisode(
                      fn.handler,
                      {
                          history: structuredClone([...state.history, ...episode.newEvents]),
                          input: state.input === undefined ? null : JSON.parse(state.input),
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
                  };
        const { hang, runAgain } = endEpisode(episode, outcome);
        if (hang !== undefined) {
            this.problems.push(hang);
            this.log(hang);
        }
        await this.store.put(state);
        if (runAgain) this.ready.push(state.instanceId);
        return episode.effects;
    }
}
