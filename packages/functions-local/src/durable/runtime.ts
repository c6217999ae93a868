import { randomUUID } from 'node:crypto';
import { LocalPlatformError } from '../errors';
import { DurableEngine } from './engine';
import type { HistoryEventRecord } from './history';
import { DurableHttpApi, type DurableHttpBackend } from './httpApi';
import {
    newInstance,
    TERMINAL_STATUSES,
    toStatus,
    validateInstanceId,
    type InstanceStatus,
    type RuntimeStatus,
} from './store';

export { validateInstanceId, type InstanceStatus, type RuntimeStatus } from './store';
export { retryDelayMs, type DeliveryMode } from './historyRules';

export type { DurableRuntimeOptions } from './engine';

const DEFAULT_ADVANCE_UNTIL_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_WAIT_MS = 30_000;

/**
 * Runs the app's registered orchestrations and activities without the Functions host: the orchestrators are
 * replayed by the `durable-functions` package's own engine over histories built here the way the Durable
 * Task Framework builds them, activities are called for real, timers run against a clock (virtual in tests),
 * and the durable client's HTTP API is served on loopback so `df.getClient(context)` works unchanged.
 */
export class DurableRuntime extends DurableEngine implements DurableHttpBackend {
    private httpApi: DurableHttpApi | undefined;

    // ---------------------------------------------------------------- client operations

    /**
     * Starts an orchestration. An existing instance with the same id is replaced only if it is Completed,
     * Failed or Terminated (the extension's default); otherwise CONFLICT, as the real client throws.
     */
    async startNew(orchestrationName: string, options: { instanceId?: string; input?: unknown } = {}): Promise<string> {
        this.assertOpen();
        const fn = this.registry.functions.get(orchestrationName);
        if (!fn || fn.trigger.type !== 'orchestrationTrigger') {
            throw new LocalPlatformError(
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
                throw new LocalPlatformError(
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
        if (!eventName) throw new LocalPlatformError('VALIDATION_FAILED', 'eventName must be a non-empty string');
        const input = data === undefined ? undefined : JSON.stringify(data);
        const delivered = await this.deliver(instanceId, { kind: 'EventRaised', name: eventName, input }, false, true);
        if (delivered === 'missing') {
            throw new LocalPlatformError(
                'NOT_FOUND',
                `No orchestration instance '${instanceId}' to raise '${eventName}' to`,
                {
                    instanceId,
                },
            );
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
        if (!state)
            throw new LocalPlatformError('NOT_FOUND', `No orchestration instance '${instanceId}'`, { instanceId });
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
            throw new LocalPlatformError('NOT_FOUND', `No orchestration instance '${instanceId}' to terminate`, {
                instanceId,
            });
        }
    }

    /**
     * Deletes an instance and its history. Only finished instances can be purged (terminate first): purging a
     * running one would leave its timers and activities writing to nothing.
     */
    async purge(instanceId: string): Promise<void> {
        await this.withInstance(instanceId, async () => {
            const state = await this.store.get(instanceId);
            if (!state) throw new LocalPlatformError('NOT_FOUND', `No orchestration instance '${instanceId}' to purge`);
            if (!TERMINAL_STATUSES.has(state.runtimeStatus)) {
                throw new LocalPlatformError(
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
            throw new LocalPlatformError('VALIDATION_FAILED', `advance(ms) needs ms >= 0, got ${ms}`);
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
                throw new LocalPlatformError(
                    'TIMEOUT',
                    `advanceUntil: the condition does not hold and nothing is left to run (no timers pending). ${await this.describeWaiting()}`,
                );
            }
            if (next.fireAtMs > limit) {
                throw new LocalPlatformError(
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
                throw new LocalPlatformError(
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
    override async clientBinding(): Promise<unknown> {
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
}
