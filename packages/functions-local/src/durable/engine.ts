import { EventEmitter } from 'node:events';
import { LocalPlatformError } from '../errors';
import { invokeFunction, type FunctionInvoker } from '../host/invoke';
import { countInvocation } from '../host/invocationCounter';
import type { FunctionRegistry } from '../host/registry';
import { describeError, runActivityWork } from './activities';
import { isVirtualClock, realClock, type Clock, type VirtualClock } from './clock';
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
import { runOrchestratorEpisode } from './replayEngine';
import { planRecovery, type RecoveryPlan } from './recovery';
import {
    MemoryInstanceStore,
    newInstance,
    TERMINAL_STATUSES,
    type InstanceMessage,
    type InstanceState,
    type InstanceStore,
} from './store';
import { fireTimer, isLiveTimer, TimerIndex } from './timers';

export interface DurableRuntimeOptions {
    /** The app's registrations: orchestrators and activities are looked up here by name. */
    registry: FunctionRegistry;
    /** How activities are called; default `invokeFunction`, as the Functions worker calls them. */
    invoke?: FunctionInvoker;
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
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * The scheduling half of the embedded runtime: per-instance inboxes and locks, episodes (history rules in
 * `historyRules.ts`), activities with bounded concurrency, durable timers against the clock. `DurableRuntime`
 * adds the client operations and virtual time on top.
 */
export abstract class DurableEngine {
    readonly taskHub: string;
    protected readonly registry: FunctionRegistry;
    protected readonly invoke: FunctionInvoker;
    protected readonly clock: Clock;
    protected readonly store: InstanceStore;
    protected readonly log: (line: string) => void;
    protected readonly activityTimeoutMs: number;
    protected readonly maxConcurrentActivities: number;
    protected readonly replaceRunning: boolean;
    protected readonly delivery: DeliveryMode;

    protected readonly ready: string[] = [];
    protected readonly activityQueue: ActivityWork[] = [];
    protected readonly running = new Set<Promise<void>>();
    protected readonly timers = new TimerIndex();
    protected readonly locks = new Map<string, Promise<void>>();
    protected readonly changes = new EventEmitter();
    protected readonly problems: string[] = [];
    protected driving: Promise<void> | undefined;
    protected wallTimer: NodeJS.Timeout | undefined;
    protected closed = false;

    constructor(options: DurableRuntimeOptions) {
        this.registry = options.registry;
        this.invoke = options.invoke ?? invokeFunction;
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

    /** The runtime activities get as their durable client. */
    /** The value of a durable client binding (activities may declare one). */
    abstract clientBinding(): Promise<unknown>;

    // ---------------------------------------------------------------- scheduling internals

    protected assertOpen(): void {
        if (this.closed) throw new LocalPlatformError('VALIDATION_FAILED', 'This DurableRuntime is closed');
    }

    protected virtualClock(operation: string): VirtualClock {
        if (!isVirtualClock(this.clock)) {
            throw new LocalPlatformError(
                'VALIDATION_FAILED',
                `${operation} needs a VirtualClock; this runtime uses the real clock`,
            );
        }
        return this.clock;
    }

    /** Serializes everything done to one instance, so a result arriving mid-episode is not lost. */
    protected async withInstance<T>(instanceId: string, work: () => Promise<T>): Promise<T> {
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

    protected enqueueReady(instanceId: string): void {
        this.ready.push(instanceId);
        this.changes.emit('change', instanceId);
        this.kick();
    }

    /** Adds a message to an instance's inbox; 'finished' when the instance already completed (dropped). */
    protected async deliver(
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
    protected kick(): void {
        if (this.isVirtual || this.closed) return;
        setImmediate(() => {
            this.drive().catch((err: unknown) => this.log(`durable runtime error: ${describeError(err).details}`));
        });
    }

    protected drive(): Promise<void> {
        if (!this.driving) {
            this.driving = this.drain().finally(() => {
                this.driving = undefined;
                this.armWallTimer();
            });
        }
        return this.driving;
    }

    protected async drain(): Promise<void> {
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

    protected async applyEffects(effects: Effect[]): Promise<void> {
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

    protected async startChild(child: ChildStart): Promise<void> {
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

    protected startActivities(): void {
        while (this.running.size < this.maxConcurrentActivities && this.activityQueue.length > 0) {
            const work = this.activityQueue.shift()!;
            const run: Promise<void> = this.runActivity(work).finally(() => this.running.delete(run));
            this.running.add(run);
        }
    }

    protected async runActivity(work: ActivityWork): Promise<void> {
        const message = await runActivityWork(this.registry.functions.get(work.name), work, {
            client: this,
            invoke: this.invoke,
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

    protected async fireDueTimers(): Promise<void> {
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

    protected nextTimer() {
        return this.timers.next(async (entry) => isLiveTimer(await this.store.get(entry.instanceId), entry));
    }

    /** With the real clock, sleeps until the earliest timer is due. */
    protected armWallTimer(): void {
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

    protected throwProblems(): void {
        if (this.problems.length === 0) return;
        const all = this.problems.splice(0);
        throw new LocalPlatformError('INTERNAL', all.join('\n'), { problems: all });
    }

    protected async describeWaiting(): Promise<string> {
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
    protected async runEpisode(instanceId: string): Promise<Effect[]> {
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
            await this.save(state, effects);
            return effects;
        }
        const episode = beginEpisode(state, batch, now, this.log);
        const fn = this.registry.functions.get(state.name);
        const counted =
            fn && fn.trigger.type === 'orchestrationTrigger' ? countInvocation(fn.name, fn.trigger.type) : undefined;
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
        counted?.(outcome.error !== undefined);
        const { hang, runAgain } = endEpisode(episode, outcome);
        if (hang !== undefined) {
            this.problems.push(hang);
            this.log(hang);
        }
        await this.save(state, episode.effects);
        if (runAgain) this.ready.push(state.instanceId);
        return episode.effects;
    }

    /** Saves an episode's end, with the messages it sends other instances (see `InstanceState.outbox`). */
    private async save(state: InstanceState, effects: Effect[]): Promise<void> {
        const outbox = effects.flatMap((e) =>
            e.kind === 'message' ? [{ instanceId: e.instanceId, message: e.message }] : [],
        );
        if (outbox.length > 0) state.outbox = outbox;
        else delete state.outbox;
        await this.store.put(state);
    }

    // ---------------------------------------------------------------- resuming saved state

    /**
     * Sets saved instances going again (a store that outlived the last runtime): runs the episodes their inboxes
     * wait for, re-runs the activities whose results never arrived (at least once, as the Durable Task Framework
     * re-delivers an activity whose host died), arms the timers not fired, creates children never created and
     * delivers the completions finished children had not delivered. Returns what it set going.
     */
    async resume(): Promise<RecoveryPlan> {
        this.assertOpen();
        const plan = planRecovery(await this.store.list());
        for (const { instanceId, message } of plan.messages) await this.deliver(instanceId, message, false, false);
        for (const child of plan.children) await this.startChild(child);
        for (const timer of plan.timers) this.timers.add(timer);
        this.activityQueue.push(...plan.activities);
        for (const instanceId of plan.ready) if (!this.ready.includes(instanceId)) this.ready.push(instanceId);
        this.kick();
        this.armWallTimer();
        return plan;
    }
}
